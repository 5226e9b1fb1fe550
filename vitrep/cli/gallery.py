"""``python -m vitrep gallery``: the figures computed at the write-up's budget, shipped with vitrep.

``gallery`` lists the entries; ``gallery show N`` prints a figure's verdicts and copies its files, computing
nothing; ``gallery build`` computes entries (through the memo, so a stopped build resumes) into the gallery.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .common import add_ray_args, executor, open_memo


def add(sub) -> None:
    g = sub.add_parser("gallery", help="the write-up's figures at its own budget, computed once and shipped: list "
                                       "them, show one (nothing computed), or build more")
    g.add_argument("action", nargs="?", default="list", choices=("list", "show", "build"),
                   help="list (default), show N, or build")
    g.add_argument("figure", nargs="?", default=None, help="show: the figure (number or preset name)")
    g.add_argument("--image", default=None, help="show: the entry on this bundled image")
    g.add_argument("--optimizer", default=None, help="show: gd or adam (default: every entry of the figure); "
                                                     "build: gd (default) or adam")
    g.add_argument("--figures", nargs="*", type=str, default=None,
                   help="build: the figures (default: the untrained ones, 2 3 13 16 10 12; figure 12 "
                        "as its untrained half where the trained weights are not on this machine)")
    g.add_argument("--images", nargs="*", default=None, help="build: your images instead of the bundled ones")
    g.add_argument("--budget", choices=("full",), default="full", help="build: the write-up's budget (the only one)")
    g.add_argument("--out", default=None, help="show: copy the entry's files here; build: the gallery folder")
    g.add_argument("--cache-dir", default=None, help="memo folder (default $VITREP_CACHE_DIR or ~/.cache/vitrep)")
    g.add_argument("--no-cache", action="store_true", help="build: neither read nor write the disk memo")
    g.add_argument("--device", default="auto", help="build: auto (default), cpu or cuda")
    add_ray_args(g)


def command(a) -> int:
    from ..errors import ConfigError
    from ..figures import gallery as G

    if a.action == "list":
        found = G.entries()
        for e in found:
            print(e.line())
        print(f"{len(found)} entries in {G.GALLERY}" if found else f"no entries in {G.GALLERY}")
        return 0
    if a.action == "show":
        if not a.figure:
            raise ConfigError("Say which figure to show, e.g. `python -m vitrep gallery show 2`.")
        found = G.find(a.figure, a.image, a.optimizer)
        if not found:
            raise ConfigError(f"The gallery has no entry for figure {a.figure}"
                              f"{f' on {a.image}' if a.image else ''}{f' under {a.optimizer}' if a.optimizer else ''}"
                              "; `python -m vitrep gallery` lists what it has.")
        for e in found:
            print(f"{e.line()}")
            if e.time_note():
                print(e.time_note())
            old = G.stale_sentence(e)
            if old:
                print(old)
            for v in e.verdicts:
                print(v["line"])
            if a.out:
                dest = Path(a.out) / e.path.name if len(found) > 1 else Path(a.out)
                print(f"wrote {len(G.show(e, dest))} files to {dest}")
        return 0
    opt = a.optimizer or "gd"
    if opt not in ("gd", "adam"):
        raise ConfigError(f"Optimizer {opt!r} is not known for a gallery entry; use gd or adam.")
    from ..figures import get_figure

    figures = [get_figure(f).figure for f in (a.figures or [str(n) for n in G.PLAN])]
    root = Path(a.out) if a.out else G.GALLERY
    with executor(a) as ex:
        made = G.build(figures, opt, root, open_memo(a), a.device, a.images, ex,
                       say=lambda m: print(m, file=sys.stderr))
    for e in made:
        print(e.line())
    return 0
