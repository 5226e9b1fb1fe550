"""``python -m vitrep models``: the models, their sizes and taps, and whether trained weights are here."""

from __future__ import annotations

import json


def add(sub) -> None:
    m = sub.add_parser("models", help="list models, sizes, taps and whether trained weights are on this machine")
    m.add_argument("--json", action="store_true", help="machine-readable output")
    m.add_argument("--timm", default=None, metavar="TEXT",
                   help="list timm models whose name contains TEXT (use one as --model timm:NAME)")


def _timm(text: str) -> int:
    from ..models.families.timm_models import SUPPORTED, search

    found = search(text, limit=200)
    for name in found:
        print(name)
    print(f"\n{len(found)} timm model(s) match {text!r}. vitrep takes apart the classes {', '.join(SUPPORTED)}; "
          f"another class is refused when you use it. Untrained unless --weights trained (downloads) or FILE.")
    return 0


def rows() -> list[dict]:
    """One row per registered model: its family, input size, depth, taps, options, and trained weights here."""
    from ..models.registry import SPECS, make_ref
    from ..models.weights import trained_file_local

    out = []
    for name, spec in SPECS.items():
        ref = make_ref(name)
        local = "n/a" if spec.trained is None else ("yes" if trained_file_local(spec) else "no")
        out.append({"name": name, "family": spec.family, "size": ref.input_size, "depth": ref.num_blocks,
                    "trained_local": local, "taps": ref.adapter.taps_summary(ref.num_blocks),
                    "description": spec.description, "arch": dict(spec.arch_defaults)})
    return out


def command(a) -> int:
    if a.timm is not None:
        return _timm(a.timm)
    table = rows()
    if a.json:
        print(json.dumps(table, indent=2))
        return 0
    print(f"{'model':<14}{'size':>5}{'depth':>6}  {'trained here':<13}description")
    for r in table:
        print(f"{r['name']:<14}{r['size']:>5}{r['depth']:>6}  {r['trained_local']:<13}{r['description']}")
        print(f"{'':<27}taps: {r['taps']}" + (f"; options {r['arch']}" if r["arch"] else ""))
    print("\n'trained here': the standard weights file is already in its download cache. "
          "--layer also takes a plain number: encoder, block or stage k.")
    return 0
