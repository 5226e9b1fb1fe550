"""The paper's sixteen figures as named, runnable panels; each figure's claims live in :mod:`.checks`.

A :class:`Figure` is a title, the figure number it reproduces and its
:class:`Panel` s (one reconstruction, class image or filter grid each).  ViT
panels leave the positional embedding out, as the author's code did (it
bypassed ``encoder.forward``), unless a panel says otherwise (figure 8's
positional half, where the swap must be able to matter).

Every figure runs at one of three budgets:

- ``quick``: at most 8 steps a panel, a check that the pipeline works (no
  verdict can be HELD: the panels do not move in 8 steps);
- ``demo``: the smallest budget at which the figure's claims can be judged
  on a 2-core CPU under the paper's method; a figure may leave out panels
  whose cost is out of proportion (listed, with the reason), or run a stated
  reduction of its setup (``demo_panels``, e.g. figure 10 at 224 px);
- ``full``: the paper's step counts and setup, for a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..errors import ConfigError
from ..models.taps import describe_tap
from .checks import CLAIMS, CLASSES
from .checks_removals import VARIANTS_10
from .verdicts import Claim

BUDGETS = ("quick", "demo", "full")


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
    steps: int = 1500  # the paper's (the full budget)
    pos_embed: bool = False  # the paper's figures left the positional embedding out
    options: tuple = ()  # extra config fields, (("loss", "l2"), ...)
    cls: str = ""  # class for generate panels
    demo: bool = True  # part of the demo budget (False: too costly for a CPU demo; full budget only)

    @property
    def needs_trained(self) -> bool:
        return self.weights == "trained" or bool(self.swaps and self.swap_from == "trained")


@dataclass(frozen=True)
class Figure:
    name: str
    figure: int
    title: str
    about: str
    panels: tuple
    cols: int = 6
    # steps per reconstruction panel in the demo budget: the smallest rung whose verdicts under plain GD equal those
    # at the write-up's budget (benchmarks/full_budget.py --ladder: 150 for figures 2 and 13; docs/findings.md)
    demo_steps: int = 150
    demo_panels: tuple = ()  # a reduced setup for the demo and quick budgets, where the paper's is out of reach
    demo_note: str = ""  # what the reduced setup changes
    untrained_variant: bool = False  # without the trained weights it swaps in, run the same panels untrained
    own_claims: Optional[tuple] = None  # claims of a figure not in the paper (tests, your own); default: .checks

    @property
    def claims(self) -> tuple[Claim, ...]:
        return self.own_claims if self.own_claims is not None else CLAIMS.get(self.figure, ())

    @property
    def needs_trained(self) -> bool:
        return not self.untrained_variant and any(p.needs_trained for p in self.panels)

    @property
    def models(self) -> list[str]:
        return sorted({p.model for p in self.panels})

    def panels_for(self, budget: str) -> list[Panel]:
        if budget != "full" and self.demo_panels:
            return list(self.demo_panels)
        return [p for p in self.panels if budget != "demo" or p.demo]

    def left_out(self, budget: str) -> list[Panel]:
        shown = {p.label for p in self.panels_for(budget)}
        return [p for p in self.panels if p.label not in shown]

    def steps_for(self, p: Panel, budget: str, steps: Optional[int] = None) -> int:
        """A panel's steps at ``budget``; ``steps`` (``preset --steps K``) overrides every panel's."""
        if steps is not None:
            return steps
        if budget == "quick":
            return quick_steps(p.steps)
        if budget == "demo" and p.kind == "reconstruct":
            return min(p.steps, self.demo_steps)
        if budget == "demo" and p.kind == "generate":
            return min(p.steps, 200)
        return p.steps

    def expected_seconds(self, budget: str, optimizers: int = 1, steps: Optional[int] = None,
                         costs: Optional[dict] = None) -> float:
        """About how long ``budget`` takes: panels x steps x blocks x each model's seconds per block and step,
        as measured on this machine's own recent figure runs (``costs``, :mod:`vitrep.figures.costs`), else the
        2-core reference CPU's table (:data:`SECONDS_PER_BLOCK_STEP`); reconstructions once per optimizer."""
        total = 0.0
        for p in self.panels_for(budget):
            times = optimizers if p.kind == "reconstruct" else 1
            total += times * self.steps_for(p, budget, steps) * panel_cost(p, costs)
        return total


# Seconds per block and step on the 2-core reference CPU, at batch 1, from the demo runs in the README
# (a layer sweep shares its prefix, so this overestimates it a little).  Used for "expected time".
SECONDS_PER_BLOCK_STEP = {"vit_b_32": 0.009, "vit_b_16": 0.04, "vit_l_16": 0.03, "vit_l_16_512": 0.2,
                          "vit_l_32": 0.012, "vit_h_14": 0.1, "resnet50": 0.025, "mixer": 0.032, "mixer_b16": 0.032,
                          "ffvit": 0.03, "vit_custom": 0.0005}
GENERATE_STEP = 0.15  # a class-image step: a whole trained ViT-B/32 forward and backward


def panel_units(p: Panel) -> float:
    """What one step of a reconstruction panel costs, in blocks of its model (a patch-8 Mixer has 4x the tokens)."""
    from ..calibration import tap_depth

    layer = p.layer if not p.layer.isdigit() else f"encoder-{p.layer}"
    blocks = max(1, tap_depth(layer, 12 if p.model != "resnet50" else 4))
    patch = dict(p.arch).get("patch", 16)
    return blocks * (256 / patch ** 2 if p.model == "mixer" else 1)


def panel_cost(p: Panel, costs: Optional[dict] = None) -> float:
    """Seconds per step of one panel (0 for a filter grid): ``costs[model]`` (measured here) or the table's."""
    if p.kind == "filters":
        return 0.0
    if p.kind == "generate":
        return GENERATE_STEP
    per = (costs or {}).get(p.model) or SECONDS_PER_BLOCK_STEP.get(p.model, 0.05)
    return per * panel_units(p)


def quick_steps(steps: int) -> int:
    """Steps in the ``quick`` budget: enough to see the curve start to fall, seconds not hours."""
    return max(2, min(8, steps // 200))


def _sweep(prefix: str, taps, **kw) -> tuple:
    return tuple(Panel(f"{prefix}{describe_tap(str(t)) if not str(t).isdigit() else 'encoder ' + str(t)}", layer=str(t), **kw)
                 for t in taps)


ATTN_ONLY = "residual_1,ln_2,mlp,residual_2"  # ln_1 then attention, nothing else


def _figure_10(model: str, encoders, steps: int, swaps: str, demo: bool = True) -> tuple:
    return tuple(Panel(f"{v} encoder {k}", model=model, layer=str(k), remove=rm, swaps=swaps, steps=steps,
                       image="rocket", demo=demo)
                 for v, rm in VARIANTS_10.items() for k in encoders)


FIGURES: dict[str, Figure] = {f.name: f for f in [
    Figure("class-images", 1, "Class images, trained ViT-B/32",
           "Inputs generated for animal and landscape classes by a trained ViT-B/32 (blur, then jitter); judged by "
           "a second trained model, ResNet-50, that did not make them.",
           tuple(Panel(c, kind="generate", weights="trained", cls=c, steps=400) for c in CLASSES), cols=4),
    Figure("layer-depth", 2, "Untrained ViT-B/32 encoders 1-12 beside untrained ResNet-50 layers",
           "ViT representations stay about as clear at encoder 12 as at 1; ResNet-50's fade with depth.",
           _sweep("ViT ", range(1, 13))
           + tuple(Panel(f"ResNet {t}", model="resnet50", layer=t) for t in ("conv1", "layer1", "layer2", "layer3", "layer4"))),
    Figure("single-encoders", 3, "Each ViT-B/32 encoder on its own (untrained)",
           "Stem, then encoder k alone, for a cat and a rocket (the paper: a dalmatian and a tesla coil). The paper "
           "states no finding here, so the panels are shown without a verdict.",
           _sweep("cat: ", [f"only-encoder-{k}" for k in range(1, 13)])
           + _sweep("rocket: ", [f"only-encoder-{k}" for k in range(1, 13)], image="rocket")),
    Figure("stem-vs-encoder1", 4, "Stem alone and stem + encoder 1, untrained vs trained ViT-B/32",
           "The strided 32x32 stem, not the first encoder, loses the detail; training sharpens the stem.",
           tuple(Panel(f"{w} {t}", weights=w, layer=t, image="rocket")
                 for w in ("untrained", "trained") for t in ("stem", "encoder-1"))),
    Figure("vit-b32-filters", 5, "ViT-B/32 stem filters before and after training",
           "The 768 3x32x32 filters of conv_proj, each min-max normalised.",
           (Panel("untrained filters", kind="filters"), Panel("trained filters", kind="filters", weights="trained")),
           cols=2),
    Figure("vit-l16-stem", 6, "ViT-L/16 stem: accurate even untrained; its filters after training",
           "Reconstruction from the untrained 16x16 stem (overcomplete) beside the untrained 32x32 stem of ViT-B/32 "
           "(undercomplete), and the L/16 stem filters untrained and trained.",
           (Panel("untrained L/16 stem", model="vit_l_16", layer="stem", image="rocket"),
            Panel("untrained B/32 stem", model="vit_b_32", layer="stem", image="rocket"),
            Panel("untrained filters", kind="filters", model="vit_l_16"),
            Panel("trained filters", kind="filters", model="vit_l_16", weights="trained")), cols=4),
    Figure("trained-stem", 7, "Trained stem in an untrained ViT-B/32, encoders 1-12",
           "n = 1,500 per layer; the last layer also at 105,000 steps.",
           _sweep("", range(1, 13), swaps="stem")
           + (Panel("encoder 12, 105k steps", layer="12", swaps="stem", steps=105_000, demo=False),)),
    Figure("trained-stem-ln", 8, "As figure 7, plus the trained ln_1 of encoder 1; the trained positional embedding",
           "The trained ln_1 helps; the trained positional embedding, added as the model adds it, changes nothing.",
           (Panel("stem, encoder 1", layer="1", swaps="stem"),)
           + _sweep("stem + ln_1 ", (1, 4, 8, 12), swaps="stem,ln_1")
           + (Panel("stem, untrained positions, encoder 1", layer="1", swaps="stem", pos_embed=True),
              Panel("stem + trained positions, encoder 1", layer="1", swaps="stem,pos_embedding", pos_embed=True))),
    Figure("vit-l16-512-ln", 9, "ViT-L/16 at 512 px: trained stem, untrained vs trained layer norm",
           "SWAG end-to-end weights; encoder 1 with the trained stem, without and with the trained ln_1.",
           (Panel("trained stem", model="vit_l_16_512", swaps="stem", image="rocket"),
            Panel("trained stem + ln_1", model="vit_l_16_512", swaps="stem,ln_1", image="rocket")), cols=2),
    Figure("no-ln-vs-no-mlp", 10, "Untrained ViT-L/16 at 512 px with a trained stem: intact, without attention, "
           "without layer norms, without MLPs",
           "n = 1,000; removing attention or the layer norms keeps deep layers clear up to encoder 12, only removing "
           "attention at encoder 24.",
           _figure_10("vit_l_16_512", (1, 4, 8, 12, 24), 1000, "stem"), cols=5,
           demo_panels=_figure_10("vit_l_16", (1, 12), 1000, ""),
           demo_note="demo variant: untrained ViT-L/16 at 224 px with its untrained stem, encoders 1 and 12 (the "
                     "paper: 512 px, a trained stem, encoders up to 24, which the full budget runs)",
           untrained_variant=True),
    Figure("no-residuals", 11, "Encoder 4 without residuals: attention only vs MLP only",
           "ViT-L/16, trained and untrained; attention alone passes little of the input.",
           tuple(Panel(f"{w} {what} only", model="vit_l_16", weights=w, layer="4",
                       remove=f"residual_1,residual_2,{'mlp,ln_2' if what == 'attention' else 'attention,ln_1'}")
                 for w in ("untrained", "trained") for what in ("attention", "MLP")), cols=4),
    Figure("single-attention", 12, "A single attention layer, no residual or MLP, very many steps",
           "ln_1 then attention of encoder 1 alone, ViT-L/16 trained and untrained, 20,000 steps.",
           tuple(Panel(f"{w} attention only", model="vit_l_16", weights=w, layer="only-encoder-1", remove=ATTN_ONLY,
                       steps=20_000, image="rocket") for w in ("untrained", "trained")), cols=2),
    Figure("attention-non-invertible", 13, "One encoder (layer norm then attention): m_g -> 0, input distance does not",
           "The embedding distance heads to zero while the input distance stays: many inputs, one output.",
           (Panel("ln_1 + attention", model="vit_l_16", layer="only-encoder-1", remove=ATTN_ONLY, steps=10_000,
                  image="rocket"),), cols=1),
    Figure("trained-no-attention-vs-no-mlp", 14, "Trained ViT-L/16 without attention vs without MLP",
           "Rocket (the paper: a tesla coil); deeper layers keep some highlights without attention, not without MLPs.",
           _sweep("no attention ", (1, 4, 8, 12), model="vit_l_16", weights="trained", remove="attention",
                  image="rocket")
           + _sweep("no MLP ", (1, 4, 8, 12), model="vit_l_16", weights="trained", remove="mlp", image="rocket"),
           cols=4),
    Figure("trained-no-attention-vs-no-mlp-2", 15, "The same on a second image",
           "Figure 14 on the cat (the paper: a dalmatian, one of ImageNet's classes).",
           _sweep("no attention ", (1, 4, 8, 12), model="vit_l_16", weights="trained", remove="attention")
           + _sweep("no MLP ", (1, 4, 8, 12), model="vit_l_16", weights="trained", remove="mlp"),
           cols=4),
    Figure("mixer-layers", 16, "Untrained MLP-Mixer layers with and without layer norm; patch 16 vs 8",
           "Width 1024; removing the norms makes m_g easy to minimise; patch 8 reduces the error.",
           tuple(Panel(f"p16{' no norm' if rm else ''} block {k}", model="mixer", layer=f"block-{k}",
                       arch=(("patch", 16), ("width", 1024)), remove=rm, demo=k in (1, 8))
                 for rm in ("", "norm_1,norm_2") for k in (1, 2, 4, 8))
           + (Panel("p8 block 1", model="mixer", layer="block-1", arch=(("patch", 8), ("width", 1024))),
              Panel("p8 block 8", model="mixer", layer="block-8", arch=(("patch", 8), ("width", 1024)), demo=False)),
           cols=5, demo_steps=300),
]}


def get_figure(name: str | int) -> Figure:
    """A figure by preset name or figure number."""
    if name in FIGURES:
        return FIGURES[name]
    by_fig = {str(f.figure): f for f in FIGURES.values()}
    if str(name) in by_fig:
        return by_fig[str(name)]
    raise ConfigError(f"There is no figure {name!r}; see `python -m vitrep preset --list`.")


def check_budget(budget: str) -> str:
    if budget not in BUDGETS:
        raise ConfigError(f"Budget {budget!r} is not known; use quick, demo or full.")
    return budget
