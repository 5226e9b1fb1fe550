"""The page's sixteen figures as named, runnable configurations, each with its finding as a check.

A :class:`Preset` is a list of :class:`Panel` s (one reconstruction, class
image or filter grid each), a title, the figure it reproduces and, where the
page states one, its *finding*: a claim over the panels' numbers that
:func:`run_preset` evaluates and writes into ``distances.json`` as
``{"claim", "held", "evidence"}``.  ViT panels leave the positional
embedding out, as the author's code did (it bypassed ``encoder.forward``).

Every preset runs at one of three budgets:

- ``quick``: at most 8 steps a panel, a check that the pipeline works;
- ``demo``: the smallest budget at which the figure's finding shows on a
  2-core CPU (a few minutes for an untrained figure); a preset may leave out
  panels whose cost is out of proportion (they are listed, with the reason);
- ``full``: the page's step counts, for a GPU.

Step sizes are the calibrated defaults (:mod:`vitrep.calibration`) unless a
panel sets its own.  ``weights_file`` stands in wherever a panel asks for
``trained`` weights, for offline machines; ``images`` replaces the bundled
images, in order of first use.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from .cache import Memo
from .errors import ConfigError
from .filters import filter_grid
from .generate import make_generate_config, run_generate
from .images import SAMPLES, image_source, prepare, to_pil
from .models import load_model, make_ref
from .config import make_config
from .grid import Cell, run_grid
from .result import Progress, Result
from .sheets import contact_sheet
from .taps import describe_tap

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
    steps: int = 1500  # the page's (the full budget)
    options: tuple = ()  # extra config fields, (("loss", "l2"), ...)
    cls: str = ""  # class for generate panels
    demo: bool = True  # part of the demo budget (False: too costly for a CPU demo; full budget only)

    @property
    def needs_trained(self) -> bool:
        return self.weights == "trained" or bool(self.swaps and self.swap_from == "trained")


@dataclass(frozen=True)
class Finding:
    """The page's claim for a figure, and a check of it over the panels' numbers.

    ``check(rows)`` takes ``[(panel, row)]`` (row: the panel's entry of
    ``distances.json``) and returns ``(held, evidence)``; it returns ``None``
    for ``held`` where the panels it needs are not in the run.
    """

    claim: str
    check: Callable[[list], tuple[Optional[bool], dict]] = field(repr=False, compare=False)


@dataclass(frozen=True)
class Preset:
    name: str
    figure: int
    title: str
    about: str
    panels: tuple
    cols: int = 6
    finding: Optional[Finding] = None
    demo_steps: int = 150  # steps per reconstruction panel in the demo budget

    @property
    def needs_trained(self) -> bool:
        return any(p.needs_trained for p in self.panels)

    @property
    def models(self) -> list[str]:
        return sorted({p.model for p in self.panels})

    def panels_for(self, budget: str) -> list[Panel]:
        return [p for p in self.panels if budget != "demo" or p.demo]

    def left_out(self, budget: str) -> list[Panel]:
        return [p for p in self.panels if budget == "demo" and not p.demo]

    def steps_for(self, p: Panel, budget: str) -> int:
        if budget == "quick":
            return quick_steps(p.steps)
        if budget == "demo" and p.kind == "reconstruct":
            return min(p.steps, self.demo_steps)
        if budget == "demo" and p.kind == "generate":
            return min(p.steps, 200)
        return p.steps

    def expected_seconds(self, budget: str) -> float:
        """About how long ``budget`` takes on the 2-core reference CPU: panels x steps x blocks x the
        measured seconds per block and step of each model (:data:`SECONDS_PER_BLOCK_STEP`)."""
        return sum(self.steps_for(p, budget) * panel_cost(p) for p in self.panels_for(budget))


# Seconds per block and step on the 2-core reference CPU, at batch 1, from the demo runs in the README
# (a layer sweep shares its prefix, so this overestimates it a little).  Used for "expected time".
SECONDS_PER_BLOCK_STEP = {"vit_b_32": 0.009, "vit_b_16": 0.04, "vit_l_16": 0.03, "vit_l_16_512": 0.2,
                          "vit_l_32": 0.012, "vit_h_14": 0.1, "resnet50": 0.025, "mixer": 0.032, "mixer_b16": 0.032,
                          "ffvit": 0.03, "vit_custom": 0.0005}
GENERATE_STEP = 0.15  # a class-image step: a whole trained ViT-B/32 forward and backward


def panel_cost(p: Panel) -> float:
    """Seconds per step of one panel on the reference CPU (0 for a filter grid)."""
    from .calibration import tap_depth

    if p.kind == "filters":
        return 0.0
    if p.kind == "generate":
        return GENERATE_STEP
    layer = p.layer if not p.layer.isdigit() else f"encoder-{p.layer}"
    blocks = max(1, tap_depth(layer, 12 if p.model != "resnet50" else 4))
    per = SECONDS_PER_BLOCK_STEP.get(p.model, 0.05)
    patch = dict(p.arch).get("patch", 16)
    return per * blocks * (256 / patch ** 2 if p.model == "mixer" else 1)  # a patch-8 Mixer has 4x the tokens


def quick_steps(steps: int) -> int:
    """Steps in the ``quick`` budget: enough to see the curve start to fall, seconds not hours."""
    return max(2, min(8, steps // 200))


def _sweep(prefix: str, taps, **kw) -> tuple:
    return tuple(Panel(f"{prefix}{describe_tap(str(t)) if not str(t).isdigit() else 'encoder ' + str(t)}", layer=str(t), **kw)
                 for t in taps)


ATTN_ONLY = "residual_1,ln_2,mlp,residual_2"  # ln_1 then attention, nothing else
CLOSE_DB = 3.0  # "about as clear": within this many dB PSNR


# --- the checks: numbers from distances.json rows -------------------------------------------------

def _psnr(row: dict) -> float:
    return float(row["final"]["psnr"])


def _pick(rows: list, **match) -> list:
    """``(panel, row)`` pairs whose panel attributes equal ``match`` (finished or diverged runs only)."""
    return [(p, r) for p, r in rows if all(getattr(p, k) == v for k, v in match.items()) and "final" in r]


def _one(rows: list, **match) -> Optional[dict]:
    hit = _pick(rows, **match)
    return hit[0][1] if hit else None


def _mean(xs: Sequence[float]) -> float:
    return float(np.mean(xs)) if len(xs) else float("nan")


def _r(x: float) -> float:
    return round(float(x), 2)


def _check_layer_depth(rows):
    vit = {int(p.layer): _psnr(r) for p, r in _pick(rows, model="vit_b_32")}
    res = {p.layer: _psnr(r) for p, r in _pick(rows, model="resnet50")}
    early, late = [vit[k] for k in (1, 2, 3, 4) if k in vit], [vit[k] for k in (9, 10, 11, 12) if k in vit]
    if not early or not late or "conv1" not in res or "layer4" not in res:
        return None, {}
    ev = {"vit_psnr_encoders_1_4": _r(_mean(early)), "vit_psnr_encoders_9_12": _r(_mean(late)),
          "resnet_psnr_conv1": _r(res["conv1"]), "resnet_psnr_layer4": _r(res["layer4"]),
          "vit_encoders_passing_bar": sum(r["success"] for _, r in _pick(rows, model="vit_b_32"))}
    held = abs(_mean(early) - _mean(late)) <= CLOSE_DB and res["conv1"] - res["layer4"] >= 2 * CLOSE_DB
    return held, ev


def _check_single_encoders(rows):
    ev, held = {}, True
    for image in dict.fromkeys(p.image for p, _ in rows):
        ps = {p.layer: _psnr(r) for p, r in _pick(rows, image=image)}
        if "only-encoder-1" not in ps:
            return None, {}
        spread = max(abs(v - ps["only-encoder-1"]) for v in ps.values())
        ev[f"{image}_psnr_only_encoder_1"] = _r(ps["only-encoder-1"])
        ev[f"{image}_psnr_range"] = [_r(min(ps.values())), _r(max(ps.values()))]
        held = held and spread <= CLOSE_DB
    return held, ev


def _check_stem_vs_encoder1(rows):
    u, t = _one(rows, weights="untrained", layer="stem"), _one(rows, weights="trained", layer="stem")
    u1, t1 = _one(rows, weights="untrained", layer="encoder-1"), _one(rows, weights="trained", layer="encoder-1")
    if not (u and t and u1 and t1):
        return None, {}
    ev = {"untrained_stem_psnr": _r(_psnr(u)), "trained_stem_psnr": _r(_psnr(t)),
          "untrained_encoder1_psnr": _r(_psnr(u1)), "trained_encoder1_psnr": _r(_psnr(t1))}
    return _psnr(t) > _psnr(u) and abs(_psnr(u1) - _psnr(u)) <= CLOSE_DB, ev


def _check_filters_structure(rows):
    s = {p.weights: r.get("neighbour_correlation") for p, r in rows if p.kind == "filters"}
    if s.get("untrained") is None or s.get("trained") is None:
        return None, {}
    ev = {"untrained_neighbour_correlation": _r(s["untrained"]), "trained_neighbour_correlation": _r(s["trained"])}
    return s["trained"] > s["untrained"] + 0.1, ev


def _check_l16_stem(rows):
    r = _one(rows, kind="reconstruct", layer="stem")
    if r is None:
        return None, {}
    return bool(r["success"]), {"untrained_stem_m_g": _r(r["final"]["embedding_distance"]),
                                "m_r": _r(r["baseline"]["embedding_distance"]), "psnr": _r(_psnr(r))}


def _check_flat_with_depth(rows):
    ps = {int(p.layer): _psnr(r) for p, r in _pick(rows, steps=1500) if p.layer.isdigit()}
    if 1 not in ps or len(ps) < 2:
        return None, {}
    deep = max(ps)
    return ps[1] - ps[deep] <= CLOSE_DB, {"psnr_encoder_1": _r(ps[1]), f"psnr_encoder_{deep}": _r(ps[deep])}


def _check_ln_swap(rows):
    ln = _one(rows, swaps="stem,ln_1", layer="12")
    pos = _one(rows, swaps="stem,pos_embedding", layer="12")
    if ln is None or pos is None:
        return None, {}
    return _psnr(ln) > _psnr(pos), {"stem_ln1_encoder12_psnr": _r(_psnr(ln)), "stem_pos_encoder12_psnr": _r(_psnr(pos))}


def _check_l16_ln(rows):
    a, b = _one(rows, swaps="stem"), _one(rows, swaps="stem,ln_1")
    if a is None or b is None:
        return None, {}
    return _psnr(b) > _psnr(a), {"trained_stem_psnr": _r(_psnr(a)), "trained_stem_ln1_psnr": _r(_psnr(b))}


def _check_no_ln_vs_no_mlp(rows):
    ln = {int(p.layer): _psnr(r) for p, r in _pick(rows, remove="ln_1,ln_2")}
    mlp = {int(p.layer): _psnr(r) for p, r in _pick(rows, remove="mlp")}
    if 1 not in ln or len(ln) < 2 or max(ln) not in mlp:
        return None, {}
    deep = max(ln)
    ev = {"no_ln_psnr_encoder_1": _r(ln[1]), f"no_ln_psnr_encoder_{deep}": _r(ln[deep]),
          f"no_mlp_psnr_encoder_{deep}": _r(mlp[deep])}
    return ln[1] - ln[deep] <= CLOSE_DB and ln[deep] >= mlp[deep], ev


def _check_no_residuals(rows):
    ev, held = {}, True
    for w in ("untrained", "trained"):
        att = [r for p, r in _pick(rows, weights=w) if "mlp" in p.remove]
        mlp = [r for p, r in _pick(rows, weights=w) if "attention" in p.remove]
        if not att or not mlp:
            return None, {}
        ev[f"{w}_attention_only_psnr"], ev[f"{w}_mlp_only_psnr"] = _r(_psnr(att[0])), _r(_psnr(mlp[0]))
        held = held and _psnr(mlp[0]) > _psnr(att[0])
    return held, ev


def _ratio(r: dict) -> float:
    return r["final"]["embedding_distance"] / r["baseline"]["embedding_distance"]


def _check_single_attention(rows):
    u, t = _one(rows, weights="untrained"), _one(rows, weights="trained")
    if u is None or t is None:
        return None, {}
    return _ratio(t) < _ratio(u), {"untrained_m_g_over_m_r": _r(_ratio(u)), "trained_m_g_over_m_r": _r(_ratio(t))}


def _check_non_invertible(rows):
    r = _one(rows)
    if r is None or "start" not in r:
        return None, {}
    fall = r["start"]["embedding_distance"] / max(r["final"]["embedding_distance"], 1e-12)
    kept = r["final"]["input_distance"] / r["start"]["input_distance"]
    ev = {"m_g_start": _r(r["start"]["embedding_distance"]), "m_g_final": _r(r["final"]["embedding_distance"]),
          "m_g_fell_by": _r(fall), "input_distance_start": _r(r["start"]["input_distance"]),
          "input_distance_final": _r(r["final"]["input_distance"]), "psnr": _r(_psnr(r))}
    return fall >= 10 and kept >= 0.5, ev


def _check_no_attention_vs_no_mlp(rows):
    att = {int(p.layer): _psnr(r) for p, r in _pick(rows, remove="attention")}
    mlp = {int(p.layer): _psnr(r) for p, r in _pick(rows, remove="mlp")}
    both = sorted(set(att) & set(mlp))
    if not both:
        return None, {}
    deep = both[-1]
    return att[deep] > mlp[deep], {f"no_attention_psnr_encoder_{deep}": _r(att[deep]),
                                   f"no_mlp_psnr_encoder_{deep}": _r(mlp[deep])}


def _mixer(p: Panel) -> tuple:
    return dict(p.arch).get("patch"), bool(p.remove)


def _check_mixer(rows):
    by = {(_mixer(p), p.layer): r for p, r in _pick(rows, model="mixer")}
    intact8, nonorm8 = by.get(((16, False), "block-8")), by.get(((16, True), "block-8"))
    p16, p8 = by.get(((16, False), "block-1")), by.get(((8, False), "block-1"))
    if not (intact8 and nonorm8 and p16 and p8):
        return None, {}
    d = lambda r: r["final"]["input_distance"]  # noqa: E731
    ev = {"p16_block8_input_distance": _r(d(intact8)), "p16_no_norm_block8_input_distance": _r(d(nonorm8)),
          "p16_block1_input_distance": _r(d(p16)), "p8_block1_input_distance": _r(d(p8))}
    return d(nonorm8) < d(intact8) and d(p8) < d(p16), ev


def _check_class_images(rows):
    gen = [(p, r) for p, r in rows if p.kind == "generate" and "top5" in r]
    if not gen:
        return None, {}
    top1 = {p.cls: r["top5"][0][1] for p, r in gen}
    hits = sum(r["top5"][0][0] == r["class_index"] for _, r in gen)
    return hits == len(gen), {"classified_as_their_class": f"{hits}/{len(gen)}", "top1": top1}


# --- the sixteen figures ---------------------------------------------------------------------------

PRESETS: dict[str, Preset] = {p.name: p for p in [
    Preset("class-images", 1, "Class images, trained ViT-B/32",
           "Inputs generated for animal and landscape classes by a trained ViT-B/32 (blur, then jitter).",
           tuple(Panel(c, kind="generate", weights="trained", cls=c, steps=400)
                 for c in ("dalmatian", "tabby", "goldfinch", "monarch", "alp", "volcano", "lakeside", "seashore")),
           cols=4, finding=Finding("Each generated image is taken by the trained model for its own class (top-1).",
                                   _check_class_images)),
    Preset("layer-depth", 2, "Untrained ViT-B/32 encoders 1-12 beside untrained ResNet-50 layers",
           "ViT representations stay about as clear at encoder 12 as at 1; ResNet-50's fade with depth.",
           _sweep("ViT ", range(1, 13))
           + tuple(Panel(f"ResNet {t}", model="resnet50", layer=t) for t in ("conv1", "layer1", "layer2", "layer3", "layer4")),
           finding=Finding(f"The ViT keeps the image about as well at encoders 9-12 as at 1-4 (mean PSNR within "
                           f"{CLOSE_DB:g} dB), while ResNet-50's layer4 falls far below its conv1 "
                           f"(at least {2 * CLOSE_DB:g} dB).", _check_layer_depth)),
    Preset("single-encoders", 3, "Each ViT-B/32 encoder on its own (untrained)",
           "Stem, then encoder k alone, for a cat and a rocket (the page: a dalmatian and a tesla coil).",
           _sweep("", [f"only-encoder-{k}" for k in range(1, 13)])
           + _sweep("", [f"only-encoder-{k}" for k in range(1, 13)], image="rocket"),
           finding=Finding(f"Every encoder on its own keeps the image about as well as encoder 1 does (PSNR "
                           f"within {CLOSE_DB:g} dB), on each image.", _check_single_encoders)),
    Preset("stem-vs-encoder1", 4, "Stem alone and stem + encoder 1, untrained vs trained ViT-B/32",
           "The strided 32x32 stem, not the first encoder, loses the detail; training sharpens the stem.",
           tuple(Panel(f"{w} {t}", weights=w, layer=t, image="rocket")
                 for w in ("untrained", "trained") for t in ("stem", "encoder-1")),
           finding=Finding("The trained stem reconstructs better than the untrained one, and the untrained encoder 1 "
                           f"loses little beyond its stem (within {CLOSE_DB:g} dB).", _check_stem_vs_encoder1)),
    Preset("vit-b32-filters", 5, "ViT-B/32 stem filters before and after training",
           "The 768 3x32x32 filters of conv_proj, each min-max normalised.",
           (Panel("untrained filters", kind="filters"), Panel("trained filters", kind="filters", weights="trained")),
           cols=2, finding=Finding("Training gives the stem filters spatial structure (wavelets): neighbouring "
                                   "weights correlate clearly more after training than before.",
                                   _check_filters_structure)),
    Preset("vit-l16-stem", 6, "ViT-L/16 stem: accurate even untrained; its filters after training",
           "Reconstruction from the untrained 16x16 stem, and the stem filters untrained and trained.",
           (Panel("untrained stem", model="vit_l_16", layer="stem", image="rocket"),
            Panel("untrained filters", kind="filters", model="vit_l_16"),
            Panel("trained filters", kind="filters", model="vit_l_16", weights="trained")), cols=3,
           finding=Finding("The untrained ViT-L/16 stem (overcomplete) already represents the image: m_g < m_r.",
                           _check_l16_stem)),
    Preset("trained-stem", 7, "Trained stem in an untrained ViT-B/32, encoders 1-12",
           "n = 1,500 per layer; the last layer also at 105,000 steps.",
           _sweep("", range(1, 13), swaps="stem")
           + (Panel("encoder 12, 105k steps", layer="12", swaps="stem", steps=105_000, demo=False),),
           finding=Finding(f"With a trained stem, the deepest encoder keeps the image about as well as encoder 1 "
                           f"(within {CLOSE_DB:g} dB).", _check_flat_with_depth)),
    Preset("trained-stem-ln", 8, "As figure 7, plus the trained ln_1 of encoder 1",
           "Adding the trained layer norm helps; swapping the positional embedding changes nothing.",
           _sweep("stem+ln_1 ", (1, 4, 8, 12), swaps="stem,ln_1")
           + (Panel("stem+pos_embedding encoder 12", layer="12", swaps="stem,pos_embedding"),),
           finding=Finding("At encoder 12 the trained ln_1 helps more than the trained positional embedding.",
                           _check_ln_swap)),
    Preset("vit-l16-512-ln", 9, "ViT-L/16 at 512 px: trained stem, untrained vs trained layer norm",
           "SWAG end-to-end weights; encoder 1 with the trained stem, without and with the trained ln_1.",
           (Panel("trained stem", model="vit_l_16_512", swaps="stem", image="rocket"),
            Panel("trained stem + ln_1", model="vit_l_16_512", swaps="stem,ln_1", image="rocket")), cols=2,
           finding=Finding("Swapping in the trained ln_1 beside the trained stem improves the reconstruction.",
                           _check_l16_ln)),
    Preset("no-ln-vs-no-mlp", 10, "Untrained ViT-L/16 encoders 1-8: without layer norms vs without MLPs",
           "Removing either helps early layers; without layer norm deep layers' gradients explode.",
           tuple(Panel(f"no LN encoder {k}", model="vit_l_16", layer=str(k), remove="ln_1,ln_2", demo=k in (1, 4, 8))
                 for k in range(1, 9))
           + tuple(Panel(f"no MLP encoder {k}", model="vit_l_16", layer=str(k), remove="mlp", demo=k in (1, 4, 8))
                   for k in range(1, 9)), cols=8,
           finding=Finding(f"Without layer norms encoder 8 keeps the image about as well as encoder 1 (within "
                           f"{CLOSE_DB:g} dB), and no worse than without MLPs.", _check_no_ln_vs_no_mlp)),
    Preset("no-residuals", 11, "Encoder 4 without residuals: attention only vs MLP only",
           "ViT-L/16, trained and untrained; attention alone passes little of the input.",
           tuple(Panel(f"{w} {what} only", model="vit_l_16", weights=w, layer="4",
                       remove=f"residual_1,residual_2,{'mlp,ln_2' if what == 'attention' else 'attention,ln_1'}")
                 for w in ("untrained", "trained") for what in ("attention", "MLP")), cols=4,
           finding=Finding("Without residuals, MLP-only encoders pass more of the image than attention-only ones, "
                           "trained and untrained.", _check_no_residuals)),
    Preset("single-attention", 12, "A single attention layer, no residual or MLP, very many steps",
           "ln_1 then attention of encoder 1 alone, ViT-L/16 trained and untrained, 20,000 steps.",
           tuple(Panel(f"{w} attention only", model="vit_l_16", weights=w, layer="only-encoder-1", remove=ATTN_ONLY,
                       steps=20_000, image="rocket") for w in ("untrained", "trained")), cols=2,
           finding=Finding("Training makes a single attention layer more informative: the trained one gets closer to "
                           "the page's bar (smaller m_g / m_r) than the untrained one.", _check_single_attention)),
    Preset("attention-non-invertible", 13, "One encoder (layer norm then attention): m_g -> 0, input distance does not",
           "The embedding distance heads to zero while the input distance stays: many inputs, one output.",
           (Panel("ln_1 + attention", model="vit_l_16", layer="only-encoder-1", remove=ATTN_ONLY, steps=10_000,
                  image="rocket"),), cols=1, demo_steps=600,
           finding=Finding("The embedding distance m_g falls at least tenfold while the input distance stays above "
                           "half its start: many inputs give one output.", _check_non_invertible)),
    Preset("trained-no-attention-vs-no-mlp", 14, "Trained ViT-L/16 without attention vs without MLP",
           "Rocket (the page: a tesla coil); deeper layers keep some highlights without attention, not without MLPs.",
           _sweep("no attention ", (1, 4, 8, 12), model="vit_l_16", weights="trained", remove="attention",
                  image="rocket")
           + _sweep("no MLP ", (1, 4, 8, 12), model="vit_l_16", weights="trained", remove="mlp", image="rocket"),
           cols=4, finding=Finding("At the deepest encoder shown, the model without attention keeps more of the image "
                                   "than the model without MLPs.", _check_no_attention_vs_no_mlp)),
    Preset("trained-no-attention-vs-no-mlp-2", 15, "The same on a second image",
           "Figure 14 on the cat (the page: a dalmatian, one of ImageNet's classes).",
           _sweep("no attention ", (1, 4, 8, 12), model="vit_l_16", weights="trained", remove="attention")
           + _sweep("no MLP ", (1, 4, 8, 12), model="vit_l_16", weights="trained", remove="mlp"),
           cols=4, finding=Finding("At the deepest encoder shown, the model without attention keeps more of the image "
                                   "than the model without MLPs.", _check_no_attention_vs_no_mlp)),
    Preset("mixer-layers", 16, "Untrained MLP-Mixer layers with and without layer norm; patch 16 vs 8",
           "Width 1024; removing the norms makes m_g easy to minimise; patch 8 reduces the error.",
           tuple(Panel(f"p16{' no norm' if rm else ''} block {k}", model="mixer", layer=f"block-{k}",
                       arch=(("patch", 16), ("width", 1024)), remove=rm, demo=k in (1, 8))
                 for rm in ("", "norm_1,norm_2") for k in (1, 2, 4, 8))
           + (Panel("p8 block 1", model="mixer", layer="block-1", arch=(("patch", 8), ("width", 1024))),
              Panel("p8 block 8", model="mixer", layer="block-8", arch=(("patch", 8), ("width", 1024)), demo=False)),
           cols=5,
           finding=Finding("Without layer norms, block 8 reconstructs closer to the image than the intact block 8, "
                           "and patch 8 closer than patch 16 (block 1).", _check_mixer)),
]}


def get_preset(name: str) -> Preset:
    if name in PRESETS:
        return PRESETS[name]
    by_fig = {str(p.figure): p for p in PRESETS.values()}
    if str(name) in by_fig:
        return by_fig[str(name)]
    raise ConfigError(f"There is no preset {name!r}; see `python -m vitrep preset --list`.")


def check_budget(budget: str) -> str:
    if budget not in BUDGETS:
        raise ConfigError(f"Budget {budget!r} is not known; use quick, demo or full.")
    return budget


def _weights(w: str, weights_file: Optional[str]) -> str:
    return weights_file if (w == "trained" and weights_file) else w


def panel_ref(p: Panel, weights_file: Optional[str] = None):
    return make_ref(p.model, _weights(p.weights, weights_file), swaps=p.swaps,
                    swap_from=_weights(p.swap_from, weights_file), **dict(p.arch))


def panel_config(p: Panel, steps: int, weights_file: Optional[str] = None, device: str = "auto",
                 optimizer: str = "auto"):
    """The engine config of a panel at ``steps`` (``None`` for filter panels)."""
    ref = panel_ref(p, weights_file)
    if p.kind == "generate":
        return make_generate_config(ref, p.cls, steps=steps, jitter_start=min(200, steps // 2),
                                    report_every=max(1, min(20, steps)), device=device)
    if p.kind == "filters":
        return None
    return make_config(ref, p.layer, remove=p.remove, blocks=p.blocks or None, steps=steps, pos_embed=False,
                       report_every=max(1, min(50, steps // 10 or 1)), device=device, optimizer=optimizer,
                       **dict(p.options))


def image_map(preset: Preset, images: Optional[Sequence[str]]) -> dict[str, str]:
    """The preset's bundled image names, in order of first use, mapped to the user's images (or themselves)."""
    names = list(dict.fromkeys(p.image for p in preset.panels if p.kind == "reconstruct"))
    if not images:
        return {n: n for n in names}
    return {n: images[i] for i, n in enumerate(names) if i < len(images)}


def _image_label(source: str) -> str:
    return source if source in SAMPLES else Path(source).stem


def _load(source: str, size: int):
    return prepare(image_source(source), size)


def _caption(p: Panel, r, image: str = "") -> str:
    if isinstance(r, Result):
        mark = "< m_r (pass)" if r.success else ">= m_r"
        back = f" back-offs {r.backoffs}" if r.backoffs else ""
        return (f"{p.label}{' (' + image + ')' if image else ''}\n"
                f"m_g {r.final['embedding_distance']:.3g} {mark} {r.baseline['embedding_distance']:.3g}"
                f"\nPSNR {r.final['psnr']:.1f} dB |a-a_g| {r.final['input_distance']:.3g}"
                f"{' ' + r.status if r.status != 'done' else ''}{back}")
    if hasattr(r, "top5"):
        return f"{p.label}\nlogit {r.curves['target_logit'][-1]:.3g}, next {r.curves['best_other_logit'][-1]:.3g}"
    return p.label


def neighbour_correlation(tiles: np.ndarray) -> float:
    """Mean correlation of horizontally adjacent weights within each filter: ~0 for random, high for wavelets."""
    a, b = tiles[:, :, :-1, :].reshape(len(tiles), -1), tiles[:, :, 1:, :].reshape(len(tiles), -1)
    a, b = a - a.mean(1, keepdims=True), b - b.mean(1, keepdims=True)
    den = np.sqrt((a * a).sum(1) * (b * b).sum(1))
    return float(np.mean(np.where(den > 0, (a * b).sum(1) / np.where(den > 0, den, 1), 0.0)))


def evaluate(preset: Preset, panels: Sequence[Panel], rows: Sequence[dict]) -> Optional[dict]:
    """The preset's finding over finished rows: ``{"claim", "held", "evidence"}`` (None where it states none)."""
    if preset.finding is None:
        return None
    held, evidence = preset.finding.check(list(zip(panels, rows)))
    return {"claim": preset.finding.claim, "held": held, "evidence": evidence}


def finding_line(finding: Optional[dict]) -> str:
    """One line for sheets and pages: the verdict, the claim and the numbers."""
    if not finding:
        return ""
    verdict = {True: "HELD", False: "NOT HELD", None: "NOT CHECKED (panels missing)"}[finding["held"]]
    nums = ", ".join(f"{k} {v}" for k, v in finding["evidence"].items())
    return f"{verdict}: {finding['claim']}" + (f" [{nums}]" if nums else "")


def _panels(preset: Preset, budget: str, mapping: dict) -> list[Panel]:
    """The panels a run at ``budget`` shows (reconstructions only where their image is given)."""
    return [p for p in preset.panels_for(budget) if p.kind != "reconstruct" or p.image in mapping]


def preset_cells(preset: Preset, budget: str = "demo", weights_file: Optional[str] = None, device: str = "auto",
                 optimizer: str = "auto", images: Optional[Sequence[str]] = None, loaded: Optional[dict] = None) -> list[Cell]:
    """The grid of the preset's reconstruction panels at ``budget``, in panel order (``loaded``: images read so far)."""
    check_budget(budget)
    mapping = image_map(preset, images)
    loaded = {} if loaded is None else loaded
    cells = []
    for p in _panels(preset, budget, mapping):
        if p.kind != "reconstruct":
            continue
        cfg = panel_config(p, preset.steps_for(p, budget), weights_file, device, optimizer)
        key = (mapping[p.image], cfg.model.input_size)
        if key not in loaded:
            loaded[key] = _load(*key)
        cells.append(Cell(loaded[key], cfg, {"panel": p.label}))
    return cells


def run_preset(preset: Preset, out: Path, budget: str = "demo", weights_file: Optional[str] = None,
               memo: Optional[Memo] = None, device: str = "auto",
               say: Optional[Callable[[str], None]] = None,
               progress: Optional[Callable[[Progress], Optional[bool]]] = None,
               images: Optional[Sequence[str]] = None, optimizer: str = "auto",
               on_wait=None, queue_limit: Optional[int] = None, executor=None) -> dict:
    """Run the preset's panels at ``budget``; write each panel's PNG, ``contact_sheet.png`` and ``distances.json``.

    ``say(message)`` narrates; ``progress(Progress)`` sees every report step
    (``Progress.batch``: which batch) and may return True to stop (the summary then says
    ``"stopped": true`` and no finding is judged).  ``executor`` (e.g.
    :class:`vitrep.distributed.RayExecutor`) runs the reconstructions elsewhere.
    Returns the summary.
    """
    check_budget(budget)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    say = say or (lambda msg: None)
    mapping = image_map(preset, images)
    panels = _panels(preset, budget, mapping)
    shown = {p.image: _image_label(mapping[p.image]) for p in panels if p.kind == "reconstruct"}
    results: list = [None] * len(panels)
    recon = [i for i, p in enumerate(panels) if p.kind == "reconstruct"]
    if recon:
        say(f"reconstructing {len(recon)} panel(s)")
        grid = run_grid(preset_cells(preset, budget, weights_file, device, optimizer, images), memo,
                        progress=progress, on_wait=on_wait, queue_limit=queue_limit, executor=executor)
        for i, r in zip(recon, grid.results):
            results[i] = r
    stopped = any(isinstance(r, Result) and r.status == "stopped" for r in results)
    for i, p in enumerate(panels):
        if stopped:
            break
        if p.kind == "generate":
            say(f"class image: {p.cls}")
            results[i] = run_generate(panel_config(p, preset.steps_for(p, budget), weights_file, device), memo,
                                      on_wait=on_wait, queue_limit=queue_limit)
        elif p.kind == "filters":
            say(f"filters: {p.label}")
            results[i] = filter_grid(load_model(panel_ref(p, weights_file), device))
    done = [(p, r) for p, r in zip(panels, results) if r is not None]
    tiles, rows = [], []
    for name in dict.fromkeys(p.image for p, _ in done if p.kind == "reconstruct"):
        r = next(r for p, r in done if p.kind == "reconstruct" and p.image == name)
        tiles.append((r.target, f"target: {shown[name]}"))
    several = len(shown) > 1
    for i, (p, r) in enumerate(done):
        img = r.image if p.kind != "filters" else r.image(scale=1)
        fname = f"{i + 1:02d}_{''.join(ch if ch.isalnum() else '_' for ch in p.label)}" \
                f"{'_' + shown[p.image] if several and p.kind == 'reconstruct' else ''}.png"
        to_pil(img).save(out / fname)
        tiles.append((img, _caption(p, r, shown.get(p.image, "") if several and p.kind == "reconstruct" else "")))
        row = {"label": p.label, "kind": p.kind, "file": fname, "model": p.model, "weights": p.weights}
        if isinstance(r, Result):
            row.update(image=shown[p.image], status=r.status, steps=r.steps, final=r.final, baseline=r.baseline,
                       success=r.success, backoffs=r.backoffs, seconds=r.seconds,
                       start={k: r.curves[k][0] for k in ("embedding_distance", "input_distance", "psnr")}
                       if r.curves["step"] else {}, config=r.config.to_dict())
        elif p.kind == "generate":
            row.update(status=r.status, steps=r.steps, class_index=r.config.class_index, top5=r.top5,
                       target_logit=r.curves["target_logit"][-1], best_other_logit=r.curves["best_other_logit"][-1])
        else:
            row.update(filters=r.count, filter_size=list(r.tiles.shape[1:3]),
                       neighbour_correlation=neighbour_correlation(r.tiles))
        rows.append(row)
    # the checks see the images under the names shown (the user's own, with --image)
    finding = None if stopped else evaluate(
        preset, [replace(p, image=shown.get(p.image, p.image)) for p, _ in done], rows)
    if finding is not None and weights_file and preset.needs_trained:
        finding["note"] = "trained weights stood in by the checkpoint file " + Path(weights_file).name
    label = {"quick": " (QUICK: a pipeline check, not the figure)", "demo": " (demo budget)", "full": ""}[budget]
    title = f"Figure {preset.figure}: {preset.title}{label}"
    contact_sheet(tiles, title, cols=preset.cols + (1 if recon else 0),
                  subtitle=finding_line(finding)).save(out / "contact_sheet.png")
    summary = {"preset": preset.name, "figure": preset.figure, "title": preset.title, "budget": budget,
               "quick": budget == "quick", "stopped": stopped,
               "note": {"quick": "step counts cut to a handful: a pipeline check, not the page's figure",
                        "demo": "the demo budget: the smallest at which the finding shows on a CPU",
                        "full": "the page's step counts"}[budget],
               "left_out": [p.label for p in preset.left_out(budget)],
               "images": {k: v for k, v in shown.items()}, "weights_file": weights_file,
               "finding": finding, "panels": rows}
    (out / "distances.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
