"""Project rules that code review would otherwise have to remember."""

import ast
import subprocess
import sys

from .conftest import ROOT

MAX_FUNCTION_LINES = 60  # vitrep/, dashboard/, app_pages/ and benchmarks/
MAX_MODULE_LINES = 400  # vitrep/, dashboard/, app_pages/


def _modules() -> dict[str, object]:
    out = {}
    for p in (ROOT / "vitrep").rglob("*.py"):
        parts = list(p.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


def _imports(name: str, path, modules: dict) -> set[str]:
    """The vitrep modules ``name`` imports anywhere in it (function-level imports too)."""
    is_pkg = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in modules}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for a in node.names:  # `from pkg import module` imports the module; `from mod import name`, mod
                found.add(f"{target}.{a.name}" if f"{target}.{a.name}" in modules else target)
    return {m for m in found if m in modules and m != name}


def test_engine_never_imports_streamlit():
    mods = sorted(m[len("vitrep."):] for m in _modules() if m != "vitrep" and not m.endswith("__main__"))
    assert {"fast.linear", "calibration", "reconstruction", "api", "figures.checks", "descent.loop",
            "models.families.timm_vit", "running.memo", "models.pool"} <= set(mods)  # the whole package
    code = "import sys\n" + "".join(f"import vitrep.{m}\n" for m in mods) + \
        "bad = [m for m in sys.modules if m.split('.')[0] == 'streamlit']\nprint(bad)\nsys.exit(1 if bad else 0)\n"
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr


def test_no_import_cycle_among_vitrep_modules():
    """Floors that only import downward, counting imports made inside functions (a lazy import is still an arrow);
    a package's face (its __init__) counts as importing what it hands on."""
    modules = _modules()
    edges = {m: _imports(m, p, modules) for m, p in modules.items()}
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(m: str, stack: list[str]) -> bool:
        state[m] = 1
        for n in sorted(edges[m]):
            if state.get(n) == 1:
                cycle.extend(stack[stack.index(n):] + [n] if n in stack else [m, n])
                return True
            if n not in state and visit(n, stack + [n]):
                return True
        state[m] = 2
        return False

    for m in sorted(modules):
        if m not in state and visit(m, [m]):
            break
    assert not cycle, " -> ".join(cycle)


def _python_files(*folders: str) -> list:
    return sorted(p for f in folders for p in (ROOT / f).rglob("*.py"))


def test_no_function_is_longer_than_60_lines():
    """The engine, the dashboard, its pages and the benchmark scripts: each function reads in one screen."""
    long = []
    for path in _python_files("vitrep", "dashboard", "app_pages", "benchmarks") + [ROOT / "app.py"]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}::{node.name}: {n} lines")
    assert not long, "; ".join(long)


def test_no_module_is_longer_than_400_lines():
    """A module over 400 lines holds more than one job: split it by job."""
    long = [f"{p.relative_to(ROOT)}: {n} lines" for p in _python_files("vitrep", "dashboard", "app_pages")
            if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES]
    assert not long, "; ".join(long)


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = next(line for line in ci.splitlines() if line.startswith("python3 -m venv .venv") and "pytest" in line)
    assert f"```bash\n{command}\n```" in readme
