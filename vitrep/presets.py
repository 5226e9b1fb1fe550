"""The page's sixteen figures as named, runnable configurations.

A :class:`Preset` is a list of :class:`Panel` s (one reconstruction, class
image or filter grid each) plus a title and the figure it reproduces.  ViT
panels leave the positional embedding out, as the author's code did (it
bypassed ``encoder.forward``).  ``quick`` scales step counts down for a look
in seconds (and says so); ``weights_file`` stands in wherever a panel asks
for ``trained`` weights, for offline machines.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from .cache import Memo
from .errors import ConfigError
from .filters import filter_grid
from .generate import make_generate_config, run_generate
from .images import prepare, sample_path, to_pil
from .models import load_model, make_ref
from .reconstruct import Result, make_config, run_batch
from .sheets import contact_sheet
from .taps import describe_tap


@dataclass(frozen=True)
class Panel:
    label: str
    kind: str = "reconstruct"  # reconstruct | generate | filters
    model: str = "vit_b_32"
    weights: str = "untrained"
    arch: tuple = ()  # (("patch", 8), ...) for configurable models
    layer: str = "1"
    remove: str = ""
    blocks: str = ""
    swaps: str = ""
    swap_from: str = "trained"
    image: str = "cat"
    steps: int = 1500
    options: tuple = ()  # extra config fields, (("lr_start", 0.25), ...)
    cls: str = ""  # class for generate panels

    @property
    def needs_trained(self) -> bool:
        return self.weights == "trained" or bool(self.swaps and self.swap_from == "trained")


@dataclass(frozen=True)
class Preset:
    name: str
    figure: int
    title: str
    about: str
    panels: tuple
    cols: int = 6

    @property
    def needs_trained(self) -> bool:
        return any(p.needs_trained for p in self.panels)

    @property
    def models(self) -> list[str]:
        return sorted({p.model for p in self.panels})


def quick_steps(steps: int) -> int:
    """Steps in ``--quick`` mode: enough to see the curve start to fall, seconds not hours."""
    return max(2, min(8, steps // 200))


def _sweep(prefix: str, taps, **kw) -> tuple:
    return tuple(Panel(f"{prefix}{describe_tap(str(t)) if not str(t).isdigit() else 'encoder ' + str(t)}", layer=str(t), **kw)
                 for t in taps)


DEEP = (("lr_start", 0.25), ("lr_end", 0.02))  # deeper ViT layers want a smaller step than layer 1
ATTN_ONLY = "residual_1,ln_2,mlp,residual_2"  # ln_1 then attention, nothing else

PRESETS: dict[str, Preset] = {p.name: p for p in [
    Preset("class-images", 1, "Class images, trained ViT-B/32",
           "Inputs generated for animal and landscape classes by a trained ViT-B/32 (blur, then jitter).",
           tuple(Panel(c, kind="generate", weights="trained", cls=c, steps=400)
                 for c in ("dalmatian", "tabby", "goldfinch", "monarch", "alp", "volcano", "lakeside", "seashore")),
           cols=4),
    Preset("layer-depth", 2, "Untrained ViT-B/32 encoders 1-12 beside untrained ResNet-50 layers",
           "ViT representations stay about as clear at encoder 12 as at 1; ResNet-50's fade with depth.",
           _sweep("ViT ", range(1, 13), options=DEEP)
           + tuple(Panel(f"ResNet {t}", model="resnet50", layer=t, options=DEEP)
                   for t in ("conv1", "layer1", "layer2", "layer3", "layer4"))),
    Preset("single-encoders", 3, "Each ViT-B/32 encoder on its own (untrained)",
           "Stem, then encoder k alone, for a cat and a rocket (the page: a dalmatian and a tesla coil).",
           _sweep("", [f"only-encoder-{k}" for k in range(1, 13)], options=DEEP)
           + _sweep("", [f"only-encoder-{k}" for k in range(1, 13)], image="rocket", options=DEEP)),
    Preset("stem-vs-encoder1", 4, "Stem alone and stem + encoder 1, untrained vs trained ViT-B/32",
           "The strided 32x32 stem, not the first encoder, loses the detail; training sharpens the stem.",
           tuple(Panel(f"{w} {t}", weights=w, layer=t, image="rocket")
                 for w in ("untrained", "trained") for t in ("stem", "encoder-1"))),
    Preset("vit-b32-filters", 5, "ViT-B/32 stem filters before and after training",
           "The 768 3x32x32 filters of conv_proj, each min-max normalised.",
           (Panel("untrained filters", kind="filters"), Panel("trained filters", kind="filters", weights="trained")),
           cols=2),
    Preset("vit-l16-stem", 6, "ViT-L/16 stem: accurate even untrained; its filters after training",
           "Reconstruction from the untrained 16x16 stem, and the stem filters untrained and trained.",
           (Panel("untrained stem", model="vit_l_16", layer="stem", image="rocket"),
            Panel("untrained filters", kind="filters", model="vit_l_16"),
            Panel("trained filters", kind="filters", model="vit_l_16", weights="trained")), cols=3),
    Preset("trained-stem", 7, "Trained stem in an untrained ViT-B/32, encoders 1-12",
           "n = 1,500 per layer; the last layer also at 105,000 steps.",
           _sweep("", range(1, 13), swaps="stem", options=DEEP)
           + (Panel("encoder 12, 105k steps", layer="12", swaps="stem", steps=105_000, options=DEEP),)),
    Preset("trained-stem-ln", 8, "As figure 7, plus the trained ln_1 of encoder 1",
           "Adding the trained layer norm helps; swapping the positional embedding changes nothing.",
           _sweep("stem+ln_1 ", (1, 4, 8, 12), swaps="stem,ln_1", options=DEEP)
           + (Panel("stem+pos_embedding encoder 12", layer="12", swaps="stem,pos_embedding", options=DEEP),)),
    Preset("vit-l16-512-ln", 9, "ViT-L/16 at 512 px: trained stem, untrained vs trained layer norm",
           "SWAG end-to-end weights; encoder 1 with the trained stem, without and with the trained ln_1.",
           (Panel("trained stem", model="vit_l_16_512", swaps="stem", image="rocket"),
            Panel("trained stem + ln_1", model="vit_l_16_512", swaps="stem,ln_1", image="rocket")), cols=2),
    Preset("no-ln-vs-no-mlp", 10, "Untrained ViT-L/16 encoders 1-8: without layer norms vs without MLPs",
           "Removing either helps early layers; without layer norm deep layers' gradients explode.",
           _sweep("no LN ", range(1, 9), model="vit_l_16", remove="ln_1,ln_2", options=DEEP)
           + _sweep("no MLP ", range(1, 9), model="vit_l_16", remove="mlp", options=DEEP), cols=8),
    Preset("no-residuals", 11, "Encoder 4 without residuals: attention only vs MLP only",
           "ViT-L/16, trained and untrained; attention alone passes little of the input.",
           tuple(Panel(f"{w} {what} only", model="vit_l_16", weights=w, layer="4",
                       remove=f"residual_1,residual_2,{'mlp,ln_2' if what == 'attention' else 'attention,ln_1'}",
                       options=DEEP)
                 for w in ("untrained", "trained") for what in ("attention", "MLP")), cols=4),
    Preset("single-attention", 12, "A single attention layer, no residual or MLP, very many steps",
           "ln_1 then attention of encoder 1 alone, ViT-L/16 trained and untrained, 20,000 steps.",
           tuple(Panel(f"{w} attention only", model="vit_l_16", weights=w, layer="only-encoder-1", remove=ATTN_ONLY,
                       steps=20_000, image="rocket", options=DEEP) for w in ("untrained", "trained")), cols=2),
    Preset("attention-non-invertible", 13, "One encoder (layer norm then attention): m_g -> 0, input distance does not",
           "The embedding distance heads to zero while the input distance stays: many inputs, one output.",
           (Panel("ln_1 + attention", model="vit_l_16", layer="only-encoder-1", remove=ATTN_ONLY, steps=10_000,
                  image="rocket", options=DEEP),), cols=1),
    Preset("trained-no-attention-vs-no-mlp", 14, "Trained ViT-L/16 without attention vs without MLP",
           "Rocket (the page: a tesla coil); deeper layers keep some highlights without attention, not without MLPs.",
           _sweep("no attention ", (1, 4, 8, 12), model="vit_l_16", weights="trained", remove="attention",
                  image="rocket", options=DEEP)
           + _sweep("no MLP ", (1, 4, 8, 12), model="vit_l_16", weights="trained", remove="mlp", image="rocket",
                    options=DEEP), cols=4),
    Preset("trained-no-attention-vs-no-mlp-2", 15, "The same on a second image",
           "Figure 14 on the cat (the page: a dalmatian, one of ImageNet's classes).",
           _sweep("no attention ", (1, 4, 8, 12), model="vit_l_16", weights="trained", remove="attention",
                  options=DEEP)
           + _sweep("no MLP ", (1, 4, 8, 12), model="vit_l_16", weights="trained", remove="mlp", options=DEEP),
           cols=4),
    Preset("mixer-layers", 16, "Untrained MLP-Mixer layers with and without layer norm; patch 16 vs 8",
           "Width 1024; removing the norms makes m_g easy to minimise; patch 8 reduces the error.",
           _sweep("p16 ", [f"block-{k}" for k in (1, 2, 4, 8)], model="mixer", arch=(("patch", 16), ("width", 1024)))
           + _sweep("p16 no norm ", [f"block-{k}" for k in (1, 2, 4, 8)], model="mixer",
                    arch=(("patch", 16), ("width", 1024)), remove="norm_1,norm_2")
           + _sweep("p8 ", [f"block-{k}" for k in (1, 8)], model="mixer", arch=(("patch", 8), ("width", 1024))),
           cols=5),
]}


def get_preset(name: str) -> Preset:
    if name in PRESETS:
        return PRESETS[name]
    by_fig = {str(p.figure): p for p in PRESETS.values()}
    if str(name) in by_fig:
        return by_fig[str(name)]
    raise ConfigError(f"There is no preset {name!r}; see `python -m vitrep preset --list`.")


def _weights(w: str, weights_file: Optional[str]) -> str:
    return weights_file if (w == "trained" and weights_file) else w


def panel_ref(p: Panel, weights_file: Optional[str] = None):
    return make_ref(p.model, _weights(p.weights, weights_file), swaps=p.swaps,
                    swap_from=_weights(p.swap_from, weights_file), **dict(p.arch))


def panel_config(p: Panel, quick: bool = False, weights_file: Optional[str] = None, device: str = "auto"):
    """The engine config of a panel (``None`` for filter panels)."""
    steps = quick_steps(p.steps) if quick else p.steps
    ref = panel_ref(p, weights_file)
    if p.kind == "generate":
        return make_generate_config(ref, p.cls, steps=steps, jitter_start=min(200, steps // 2),
                                    report_every=max(1, min(20, steps)), device=device)
    if p.kind == "filters":
        return None
    opts = dict(p.options)
    return make_config(ref, p.layer, remove=p.remove, blocks=p.blocks or None, steps=steps, pos_embed=False,
                       report_every=max(1, min(50, steps // 10 or 1)), device=device, **opts)


def _caption(p: Panel, r) -> str:
    if isinstance(r, Result):
        mark = "m_g<m_r" if r.success else "m_g>=m_r"
        return (f"{p.label}\nm_g {r.final['embedding_distance']:.3g} / m_r {r.baseline['embedding_distance']:.3g} {mark}"
                f"\n|a-a_g| {r.final['input_distance']:.3g}  {r.status if r.status != 'done' else ''}")
    if hasattr(r, "top5"):
        return f"{p.label}\nlogit {r.curves['target_logit'][-1]:.3g}, next {r.curves['best_other_logit'][-1]:.3g}"
    return p.label


def run_preset(preset: Preset, out: Path, quick: bool = False, weights_file: Optional[str] = None,
               memo: Optional[Memo] = None, device: str = "auto",
               progress: Optional[Callable[[str], None]] = None) -> dict:
    """Run every panel, write each panel's PNG, ``contact_sheet.png`` and ``distances.json``; return the summary."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    say = progress or (lambda msg: None)
    panels = list(preset.panels)
    results: list = [None] * len(panels)
    recon = [i for i, p in enumerate(panels) if p.kind == "reconstruct"]
    cfgs = {i: panel_config(panels[i], quick, weights_file, device) for i in recon}
    images = {i: prepare(sample_path(panels[i].image), cfgs[i].model.input_size) for i in recon}
    if recon:
        say(f"reconstructing {len(recon)} panel(s)")
        for i, r in zip(recon, run_batch([images[i] for i in recon], [cfgs[i] for i in recon], memo)):
            results[i] = r
    for i, p in enumerate(panels):
        if p.kind == "generate":
            say(f"class image: {p.cls}")
            results[i] = run_generate(panel_config(p, quick, weights_file, device), memo)
        elif p.kind == "filters":
            say(f"filters: {p.label}")
            results[i] = filter_grid(load_model(panel_ref(p, weights_file), device))
    tiles, rows = [], []
    for name in dict.fromkeys(panels[i].image for i in recon):
        i = next(j for j in recon if panels[j].image == name)
        tiles.append((results[i].target, f"target: {name}"))
    for i, (p, r) in enumerate(zip(panels, results)):
        img = r.image if p.kind != "filters" else r.image(scale=1)
        fname = f"{i + 1:02d}_{''.join(ch if ch.isalnum() else '_' for ch in p.label)}.png"
        to_pil(img).save(out / fname)
        tiles.append((img, _caption(p, r)))
        row = {"label": p.label, "kind": p.kind, "file": fname, "model": p.model, "weights": p.weights}
        if isinstance(r, Result):
            row.update(status=r.status, steps=r.steps, final=r.final, baseline=r.baseline, success=r.success,
                       config=r.config.to_dict())
        elif p.kind == "generate":
            row.update(status=r.status, steps=r.steps, class_index=r.config.class_index, top5=r.top5,
                       target_logit=r.curves["target_logit"][-1], best_other_logit=r.curves["best_other_logit"][-1])
        else:
            row.update(filters=r.count, filter_size=list(r.tiles.shape[1:3]))
        rows.append(row)
    title = f"Figure {preset.figure}: {preset.title}" + (" (QUICK: reduced steps)" if quick else "")
    contact_sheet(tiles, title, cols=preset.cols + (1 if recon else 0)).save(out / "contact_sheet.png")
    summary = {"preset": preset.name, "figure": preset.figure, "title": preset.title, "quick": quick,
               "note": "step counts reduced by --quick; not the page's figures" if quick else "full step counts",
               "weights_file": weights_file, "panels": rows}
    (out / "distances.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
