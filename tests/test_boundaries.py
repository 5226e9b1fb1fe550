"""Project rules that code review would otherwise have to remember."""

import subprocess
import sys

from .conftest import ROOT


def test_engine_never_imports_streamlit():
    mods = sorted(".".join(p.relative_to(ROOT / "vitrep").with_suffix("").parts)
                  for p in (ROOT / "vitrep").rglob("*.py") if p.stem not in ("__init__", "__main__"))
    assert {"fastops", "calibration", "reconstruct", "figures.checks", "loop", "families.deit"} <= set(mods)  # the whole package
    code = "import sys\n" + "".join(f"import vitrep.{m}\n" for m in mods) + \
        "bad = [m for m in sys.modules if m.split('.')[0] == 'streamlit']\nprint(bad)\nsys.exit(1 if bad else 0)\n"
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = next(line for line in ci.splitlines() if line.startswith("python3 -m venv .venv") and "pytest" in line)
    assert f"```bash\n{command}\n```" in readme
