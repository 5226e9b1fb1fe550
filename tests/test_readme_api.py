"""The Python examples in the README run as written (with a handful of steps instead of hundreds)."""

import re

from .conftest import ROOT


def test_the_readme_python_examples_run(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert len(blocks) >= 2
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for code in blocks:
        quick = re.sub(r"steps=\d+", "steps=2", code).replace("range(1, 13)", "range(1, 3)")
        exec(compile(quick, "README.md", "exec"), namespace)  # noqa: S102 - the README's own code
    assert (tmp_path / "sheet.png").is_file() and (tmp_path / "sweep.csv").is_file()
