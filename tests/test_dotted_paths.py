"""Every dotted path ``vitrep.x.y`` the docs, docstrings, comments and messages name resolves.

The files are read when the test runs (README.md, docs/*.md, pyproject.toml,
requirements*.txt, and the strings and comments of vitrep/, dashboard/,
app_pages/, benchmarks/ and app.py), so a module renamed or split later is
checked against what its neighbours say then.  A name resolves when its
longest importable module prefix, then attribute by attribute the rest, is
found: ``vitrep.models.registry.check_ref`` (a module, then a function) and
``vitrep.reconstruct`` (a function the package face hands on) both do.
"""

import importlib
import io
import re
import tokenize

from .conftest import ROOT

DOTTED = re.compile(r"(?<![\w./-])vitrep(?:\.[A-Za-z_]\w*)+")
TEXT_FILES = ["README.md", "docs/*.md", "pyproject.toml", "requirements*.txt"]
CODE_DIRS = ["vitrep", "dashboard", "app_pages", "benchmarks"]
WORDS = {tokenize.STRING, tokenize.COMMENT} | ({tokenize.FSTRING_MIDDLE} if hasattr(tokenize, "FSTRING_MIDDLE") else set())


def _words(path) -> list[tuple[int, str]]:
    """(line, text) of every string and comment of a Python file, or of every line of another file."""
    text = path.read_text()
    if path.suffix != ".py":
        return list(enumerate(text.splitlines(), 1))
    return [(t.start[0], t.string) for t in tokenize.generate_tokens(io.StringIO(text).readline) if t.type in WORDS]


def named_paths() -> dict[str, list[str]]:
    """Each dotted name -> the places (``file:line``) that name it."""
    files = [p for pattern in TEXT_FILES for p in sorted(ROOT.glob(pattern))]
    files += [p for d in CODE_DIRS for p in sorted((ROOT / d).rglob("*.py"))] + [ROOT / "app.py"]
    found: dict[str, list[str]] = {}
    for path in files:
        for line, text in _words(path):
            for m in DOTTED.finditer(text):
                at = line + text.count("\n", 0, m.start())
                found.setdefault(m.group(), []).append(f"{path.relative_to(ROOT)}:{at}")
    return found


def resolve(name: str) -> str:
    """'' if ``name`` resolves, else what is missing."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        module = ".".join(parts[:i])
        try:
            obj = importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name and (module == e.name or module.startswith(e.name + ".")):  # no such module (or its parent
                continue  # is no package): the next shorter prefix, and the rest as attributes
            return f"importing {module} failed: {e}"
        for k, attr in enumerate(parts[i:], i):
            try:
                obj = getattr(obj, attr)
            except AttributeError:
                return f"{'.'.join(parts[:k])} has no {attr!r}"
        return ""
    return "no module"


def test_every_named_vitrep_path_resolves():
    found = named_paths()
    assert len(found) > 50 and "vitrep.models.registry.check_ref" in found  # the scan reads what it should
    bad = []
    for name in sorted(found):
        why = resolve(name)
        if why:
            bad.append(f"{name} ({why}): {', '.join(found[name][:4])}{' ...' if len(found[name]) > 4 else ''}")
    assert not bad, "\n".join(bad)
