"""The gallery: figures computed once at the write-up's own budget, shipped with the repository, opened at once.

An entry is a folder under ``gallery/`` (:data:`GALLERY`) holding what
:func:`vitrep.figures.run_figure` writes (one PNG per panel,
``contact_sheet.png``, ``distances.json`` with every panel's config, both
metrics and the verdicts) and ``provenance.json`` (vitrep commit, torch,
device and CPU model, date, wall time).  :func:`entries` lists them,
:func:`find` picks one for a figure, image and optimizer, :func:`stale`
compares an entry's stored panel configs with what today's catalogue would
run (a changed catalogue or default makes an entry stale, and says which),
and :func:`build` computes entries through the memo, so a stopped build
loses at most the batch under way.  Nothing here computes unless ``build``
is called.  :func:`local_only` says why a server cannot run a figure live
(a row over its memory budget), before the click: there the gallery is all
a visitor sees.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Optional, Sequence

from ..errors import ConfigError
from .catalogue import Figure, get_figure

ROOT = Path(__file__).resolve().parents[2]
GALLERY = ROOT / "gallery"
# what an entry's panel configs must match today (the fields that change what is computed)
COMPARED = ("model", "tap", "surgery", "steps", "optimizer", "lr_start", "lr_end", "blur_start", "blur_end", "loss",
            "loss_scale", "pos_embed", "normalize", "seed", "init_mean", "init_std", "clamp", "precision")
# the untrained figures the gallery covers, each at the write-up's budget: (budget, steps override); figure 10
# runs its untrained variant (ViT-L/16 at 224 px, encoders 1 and 12) at the write-up's n = 1,000, figure 12 its
# untrained half where the trained weights cannot be had (:func:`untrained_only`)
PLAN = {2: ("full", None), 3: ("full", None), 13: ("full", None), 16: ("full", None), 10: ("demo", 1000),
        12: ("full", None)}


@dataclass(frozen=True)
class Entry:
    """One gallery folder: a figure at one budget under one or more optimizers, on the images it names."""

    path: Path
    figure: int
    preset: str
    budget: str
    steps: Optional[int]
    optimizers: tuple[str, ...]
    images: tuple[str, ...]
    summary: dict
    provenance: dict

    @property
    def verdicts(self) -> list[dict]:
        return self.summary.get("verdicts", [])

    @property
    def minutes(self) -> float:
        return float(self.provenance.get("seconds", 0.0)) / 60

    def steps_text(self) -> str:
        """``1,500 steps a panel`` (or the range, where panels differ)."""
        steps = sorted({r["steps"] for r in self.summary.get("panels", []) if r.get("kind") == "reconstruct"})
        if not steps:
            return "no descent"
        return f"{steps[0]:,} steps a panel" if len(steps) == 1 else f"{steps[0]:,}-{steps[-1]:,} steps a panel"

    def made_on(self) -> str:
        """``computed on <CPU> in <minutes> (torch T, vitrep C, date)``."""
        p = self.provenance
        return (f"computed on {p.get('device', 'cpu')} ({p.get('cpu', 'unrecorded CPU')}) in {self.minutes:.0f} min"
                f"; torch {p.get('torch', '?')}, vitrep {p.get('vitrep_commit', '?')}, {p.get('date', '?')[:10]}")

    def time_note(self) -> str:
        """What the wall time leaves out or takes in (a paused or resumed run), as its provenance says; or ''."""
        note = self.provenance.get("note", "")
        return f"About the {self.minutes:.0f} min: {note}." if note else ""

    def line(self) -> str:
        """One line for ``vitrep gallery``: figure, image, optimizer, budget, verdicts, provenance."""
        counts = {}
        for v in self.verdicts:  # a claim its metrics judge differently is counted as split, not by its first
            kind = "split" if len(set((v.get("by_metric") or {}).values())) > 1 else v["verdict"]
            counts[kind] = counts.get(kind, 0) + 1
        said = ", ".join(f"{n} {k}" for k, n in counts.items()) or "no claim (panels only)"
        return (f"figure {self.figure:>2}  {', '.join(self.images):<12} {'+'.join(self.optimizers):<8} "
                f"{self.budget} ({self.steps_text()})  {said}  [{self.made_on()}]")


def _load(path: Path) -> Optional[Entry]:
    try:
        summary = json.loads((path / "distances.json").read_text())
        prov = json.loads((path / "provenance.json").read_text()) if (path / "provenance.json").exists() else {}
    except (OSError, ValueError):
        return None
    return Entry(path, int(summary["figure"]), summary["preset"], summary["budget"], summary.get("steps"),
                 tuple(summary.get("optimizers", ())), tuple(summary.get("images", {}).values()), summary, prov)


def entries(root: Optional[Path] = None) -> list[Entry]:
    """Every entry under ``root`` (default :data:`GALLERY`), by figure, then plain GD before Adam."""
    root = Path(GALLERY if root is None else root)
    found = [e for p in sorted(root.glob("*/")) if (e := _load(p)) is not None] if root.is_dir() else []
    order = {"gd": 0, "adam": 1}  # the write-up's method first
    return sorted(found, key=lambda e: (e.figure, tuple(order.get(o, 2) for o in e.optimizers), e.images))


def find(figure, image: Optional[str] = None, optimizer: Optional[str] = None,
         root: Optional[Path] = None) -> list[Entry]:
    """The entries of ``figure`` (a number or preset name), on ``image`` and under ``optimizer`` where given."""
    fig = get_figure(figure)
    return [e for e in entries(root) if e.figure == fig.figure and (image is None or image in e.images)
            and (optimizer is None or optimizer in e.optimizers)]


def stale(entry: Entry) -> list[str]:
    """What today's catalogue would run differently from the entry's stored panels (empty: up to date)."""
    from .panels import figure_cells

    fig = get_figure(entry.figure)
    budget, steps = PLAN.get(fig.figure, (entry.budget, entry.steps))  # today's plan for the figure
    from ..limits import describing

    try:
        with describing():  # compared, never run: a public server's step cap is no staleness
            cells = figure_cells(fig, budget, optimizer="both" if len(entry.optimizers) > 1 else entry.optimizers[0],
                                 images=list(entry.images), steps=steps,
                                 untrained_only=bool(entry.summary.get("untrained_only")))
    except ConfigError as e:
        return [str(e)]
    today = {(c.labels["panel"], c.labels["optimizer"]): c.config.to_dict() for c in cells}
    stored = {(r["label"], r["optimizer"]): r["config"] for r in entry.summary["panels"] if r.get("kind") == "reconstruct"}
    out = [f"panel {k[0]!r} ({k[1]}) is no longer in the figure" for k in stored if k not in today]
    out += [f"panel {k[0]!r} ({k[1]}) is new in the figure" for k in today if k not in stored]
    for k in sorted(set(today) & set(stored)):
        diff = [f for f in COMPARED if today[k].get(f) != stored[k].get(f)]
        if diff:
            out.append(f"panel {k[0]!r} ({k[1]}): {', '.join(f'{f} {stored[k].get(f)!r} -> {today[k].get(f)!r}' for f in diff)}")
    return out


def stale_sentence(entry: Entry, command: bool = True) -> str:
    """One sentence for a stale entry ('' when it is up to date); ``command``: end with the command to rebuild."""
    what = stale(entry)
    if not what:
        return ""
    said = (f"The gallery entry {entry.path.name} was made by an older vitrep "
            f"({entry.provenance.get('vitrep_commit', '?')}) whose panels no longer match today's figure "
            f"{entry.figure} ({what[0]}{'; ...' if len(what) > 1 else ''})")
    if not command:
        return said + ": a live run of today's figure may give other verdicts."
    return (said + f"; rebuild it with `python -m vitrep gallery build --figures {entry.figure} --optimizer "
            f"{entry.optimizers[0]}`.")


def show(entry: Entry, out: Path) -> list[Path]:
    """Copy the entry's files into ``out`` (computing nothing); the paths written."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for f in sorted(entry.path.iterdir()):
        if f.is_file():
            written.append(Path(shutil.copy2(f, out / f.name)))
    return written


def provenance(seconds: float, device: str) -> dict:
    import torch

    from ..limits import cpu_model

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    dev = torch.cuda.get_device_name(0) if device.startswith("cuda") and torch.cuda.is_available() else "cpu"
    return {"vitrep_commit": commit.strip() or "unknown", "torch": torch.__version__, "device": dev,
            "cpu": cpu_model(), "threads": torch.get_num_threads(),
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "seconds": round(seconds, 1)}


def untrained_only(fig: Figure, budget: str) -> bool:
    """Whether a build of ``fig`` on this machine runs its untrained half: some of its panels need trained
    weights that cannot be had here, and some do not (figure 12 offline).  A figure all of whose panels need
    them is not built without them (the run says which file is missing)."""
    from .panels import trained_missing, untrained_half

    panels = [p for p in fig.panels_for(budget) if p.kind == "reconstruct"]
    dropped = untrained_half(panels)
    return 0 < len(dropped) < len(panels) and bool(trained_missing(panels))


def entry_name(fig: Figure, optimizer: str) -> str:
    return f"figure{fig.figure:02d}-{fig.name}-{optimizer}"


def build(figures: Sequence[int] = tuple(PLAN), optimizer: str = "gd", root: Optional[Path] = None, memo=None,
          device: str = "auto", images=None, executor=None, say: Callable[[str], None] = print,
          progress=None) -> list[Entry]:
    """Compute each figure at the write-up's budget (:data:`PLAN`; others at ``full``) and write its entry."""
    from .run import run_figure

    made = []
    for n in figures:
        fig = get_figure(n)
        budget, steps = PLAN.get(fig.figure, ("full", None))
        path = Path(GALLERY if root is None else root) / entry_name(fig, optimizer)
        half = untrained_only(fig, budget)
        say(f"figure {fig.figure} ({fig.name}), {budget}{f' at {steps:,} steps' if steps else ''}, {optimizer}"
            + (", its untrained half (the trained weights are not on this machine)" if half else ""))
        t0 = time.perf_counter()
        summary = run_figure(fig, path, budget, memo=memo, device=device, optimizer=optimizer, steps=steps,
                             images=images, executor=executor, say=say, progress=progress, untrained_only=half)
        if summary["stopped"]:
            say(f"figure {fig.figure} stopped; its finished panels are in the memo, build again to resume")
            break
        (path / "provenance.json").write_text(json.dumps(provenance(time.perf_counter() - t0, device), indent=1) + "\n")
        made.append(_load(path))
    return made


def _steps_of(summary: dict) -> str:
    steps = sorted({r["steps"] for r in summary.get("panels", []) if r.get("kind") == "reconstruct"})
    return "" if not steps else f"{steps[0]:,}" if len(steps) == 1 else f"{steps[0]:,}-{steps[-1]:,}"


def differences(live: dict, stored: dict) -> list[str]:
    """One sentence per claim and optimizer on which a live run and a gallery entry disagree, saying why."""
    from .verdicts import METHODS, NOT_CHECKED

    theirs = {(v["claim"], v["optimizer"]): v for v in stored.get("verdicts", [])}
    a, b = _steps_of(live), _steps_of(stored)
    out = []
    for v in live.get("verdicts", []):
        g = theirs.get((v["claim"], v["optimizer"]))
        if g is None or (v["verdict"], v.get("by_metric")) == (g["verdict"], g.get("by_metric")):
            continue
        head = f"Claim {v['claim']} ({METHODS.get(v['optimizer'], v['optimizer'])}): "
        said, theirs_said = v.get("words", v["verdict"]), g.get("words", g["verdict"])
        if v["verdict"] == NOT_CHECKED:
            out.append(f"{head}{a} steps a panel: too short to judge ({v['reason']}); at the write-up's budget "
                       f"({b} steps a panel) it is {theirs_said}.")
        else:
            out.append(f"{head}{a} steps a panel give {said}; the write-up's budget ({b} steps a panel) gives "
                       f"{theirs_said}: at {a} steps the panels have not yet gone as far as the write-up's did.")
    return out


def local_only(fig: Figure, budget: str, optimizer: str = "gd", weights_file: Optional[str] = None) -> str:
    """Why this server cannot run the figure at ``budget`` (one sentence), or '' where it can.

    Every reconstruction panel's row is held to the memory budget before the
    click (:func:`vitrep.models.sizes.check_row`), as the run would be."""
    from ..models.sizes import MemoryBudgetError, check_row

    from .panels import figure_panels, optimizers_of, panel_config

    panels, _ = figure_panels(fig, budget, weights_file)
    for p in panels:
        if p.kind != "reconstruct":
            continue
        for opt in optimizers_of(optimizer):
            try:
                check_row(panel_config(p, fig.steps_for(p, budget), weights_file, optimizer=opt))
            except MemoryBudgetError as e:
                return f"panel {p.label!r}: {e}"
    return ""
