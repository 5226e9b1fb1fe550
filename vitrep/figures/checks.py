"""The paper's claims, figure by figure: each quote beside the test that checks it.

Every claim quotes the paper (``../shared/seed``, "Representation in Vision
Transformers and Attentionless Models"; spelling as published) and tests
the quote on the panels it names, with thresholds named after the paper's
words (:mod:`vitrep.figures.verdicts`).  Where the paper states no finding
for a figure (figure 3) there is no claim, and the figure shows its panels
without a verdict.  A claim about how close a picture ends is judged by the
metric its words name first and by the other beside it (``metrics``:
structure, SSIM, for clarity and quality; distance, ``||a - a_g||``, for
accuracy and error); its judge takes the :class:`~.verdicts.Metric` and
compares panels with ``m.worse`` and ``m.better``.
"""

from __future__ import annotations

import numpy as np

from .checks_removals import FIGURE_10, FIGURE_11, FIGURE_12, FIGURE_13, FIGURE_14, FIGURE_15, FIGURE_16
from .verdicts import farther as far
from .verdicts import says_ends
from .verdicts import (ABOUT_THE_SAME, CLEARLY, DISTANCE_FIRST, MOST, MUCH_HARDER, NO_DIFFERENCE,
                       STRUCTURE_FIRST, SUBSTANTIALLY, Claim, NotChecked, m_over_r)

VIT_TAPS = tuple(f"ViT encoder {k}" for k in range(1, 13))
RESNET_TAPS = tuple(f"ResNet {t}" for t in ("conv1", "layer1", "layer2", "layer3", "layer4"))


# --- figure 1 ---------------------------------------------------------------------------------------

CLASSES = ("dalmatian", "tabby", "goldfinch", "monarch", "alp", "volcano", "lakeside", "seashore")


def _recognised(rows):
    judged = [r.get("judge") for r in rows.values()]
    if any(j is None or "top5" not in j for j in judged):
        why = next((j.get("missing") for j in judged if j and j.get("missing")), "no judge ran")
        raise NotChecked(f"weights missing: {why}")
    hits = [label for label, r in rows.items() if r["class_index"] in [i for i, _, _ in r["judge"]["top5"]]]
    share = len(hits) / len(rows)
    return share >= MOST, {"judge": rows[next(iter(rows))]["judge"]["model"],
                           "classes_in_judge_top5": f"{len(hits)}/{len(rows)}", "recognised": ", ".join(hits)}


def _says_recognised(rows, m):
    hits = sum(r["class_index"] in [i for i, _, _ in r["judge"]["top5"]] for r in rows.values())
    return (f"A second trained model (ResNet-50) puts the class of {hits} of the {len(rows)} generated images in its "
            f"top 5 (the write-up: recognizable images).")


FIGURE_1 = (Claim(
    "it is clear that recognizable images may be formed using only the information present in the vision "
    "transformer architecture",
    "a second trained model that did not make the images (ResNet-50) puts the image's class in its top 5 for at "
    "least half of the classes; the generator's own logit, which the generation maximised, is not the test",
    CLASSES, _recognised, measure="a second model's top 5", says=_says_recognised),)


# --- figure 2 ---------------------------------------------------------------------------------------

def _flat_vit_fading_resnet(rows, m):
    vit = m.worse(rows["ViT encoder 12"], rows["ViT encoder 1"])
    res = m.worse(rows["ResNet layer4"], rows["ResNet layer1"])
    ev = {f"{m.short} ViT worse at encoder 12 than 1": vit, f"{m.short} ResNet worse at layer4 than layer1": res}
    return abs(vit) <= ABOUT_THE_SAME and res >= CLEARLY, ev


def _vit_harder_than_resnet(rows):
    vit = [m_over_r(rows[t]) < 1 for t in VIT_TAPS]
    res = [m_over_r(rows[t]) < 1 for t in RESNET_TAPS]
    share_vit, share_res = sum(vit) / len(vit), sum(res) / len(res)
    if share_res == 0:
        raise NotChecked("no ResNet-50 panel reached m_g < m_r, so there is nothing to be harder than")
    ev = {"vit_passing": f"{sum(vit)}/{len(vit)}", "resnet_passing": f"{sum(res)}/{len(res)}",
          "vit_median_m_g_over_m_r": float(np.median([m_over_r(rows[t]) for t in VIT_TAPS])),
          "resnet_median_m_g_over_m_r": float(np.median([m_over_r(rows[t]) for t in RESNET_TAPS]))}
    return share_vit <= MUCH_HARDER * share_res, ev


def _says_flat_vit(rows, m):
    vit = m.worse(rows["ViT encoder 12"], rows["ViT encoder 1"])
    res = m.worse(rows["ResNet layer4"], rows["ResNet layer1"])
    return (f"The ViT's reconstruction ends {far(m, vit)} at encoder 12 than at encoder 1 (the write-up: about the "
            f"same); ResNet-50's ends {far(m, res)} at layer4 than at layer1 (the write-up: decreasing).")


def _says_harder(rows, m):
    vit = sum(m_over_r(rows[t]) < 1 for t in VIT_TAPS)
    res = sum(m_over_r(rows[t]) < 1 for t in RESNET_TAPS)
    return (f"{vit} of {len(VIT_TAPS)} ViT encoders and {res} of {len(RESNET_TAPS)} ResNet-50 layers reach "
            f"m_g < m_r (the write-up: much more difficult for the ViT).")


FIGURE_2 = (
    Claim("Compare the decreasing representation clarity with increased depth to the nearly constant degree of "
          "clarity in the ViT: even at the twelth and final encoder, the representation quality is approximately "
          "the same as that in the first layer.",
          "the ViT's reconstruction at encoder 12 within 10% of encoder 1's ('approximately the same'), while "
          "ResNet-50's at layer4 is at least 5% worse than at layer1 ('decreasing')",
          ("ViT encoder 1", "ViT encoder 12", "ResNet layer1", "ResNet layer4"), _flat_vit_fading_resnet,
          metrics=STRUCTURE_FIRST, says=_says_flat_vit),
    Claim("it appears to be much more difficult to approximate a natural image using Gaussian-convolved "
          "representations for ViT than for ResNet50, or more precisely it is difficult to find a learning rate "
          "$\\epsilon$ such that [m_g < m_r]",
          "under plain GD with each panel's calibrated step size, the share of ViT encoders reaching m_g < m_r is "
          "at most half the share of ResNet-50 layers that do ('much more difficult')",
          VIT_TAPS + RESNET_TAPS, _vit_harder_than_resnet, on_m=True, says=_says_harder),
)


# --- figure 4 ---------------------------------------------------------------------------------------

def _stem_responsible(rows, m):
    ev = {}
    ok = True
    for w in ("untrained", "trained"):
        r = m.worse(rows[f"{w} encoder-1"], rows[f"{w} stem"])
        ev[f"{m.short} {w} encoder 1 worse than stem"] = r
        ok = ok and r <= ABOUT_THE_SAME
    return ok, ev


def _training_sharpens_stem(rows, m):
    return m.better(rows["trained stem"], rows["untrained stem"], SUBSTANTIALLY), {}


def _says_stem(rows, m):
    u = m.worse(rows["untrained encoder-1"], rows["untrained stem"])
    t = m.worse(rows["trained encoder-1"], rows["trained stem"])
    return (f"Encoder 1 ends {far(m, u)} than the stem alone when untrained, {far(m, t)} when trained (the write-up: "
            f"the loss is already at the stem).")


_says_sharpens = says_ends("trained stem", "The trained stem's reconstruction", "untrained stem",
                           "the untrained stem's", "greatly enhanced")


FIGURE_4 = (
    Claim("it is clear that the input processing itself is responsible for the decreased representation clarity",
          "encoder 1's reconstruction at most 10% worse than its stem's alone, untrained and trained (the loss is "
          "already at the stem)",
          ("untrained stem", "untrained encoder-1", "trained stem", "trained encoder-1"), _stem_responsible,
          metrics=STRUCTURE_FIRST, says=_says_stem),
    Claim("training greatly enhances the processing convolutional layer's representation resolution",
          "the trained stem's reconstruction at least 20% better than the untrained stem's ('greatly')",
          ("untrained stem", "trained stem"), _training_sharpens_stem, metrics=STRUCTURE_FIRST, says=_says_sharpens),
)


# --- figures 5 and 6: the stem's filters ------------------------------------------------------------

def unstructured_share(untrained: dict, trained: dict) -> tuple[float, float]:
    """Share of the trained filters with no more spatial structure than untrained ones, and the cut used.

    Structure is a filter's neighbour correlation (:func:`vitrep.figures.rows.neighbour_correlations`); the
    cut is the untrained filters' 99th percentile, so about 1% of untrained filters pass it by chance.
    """
    cut = float(np.percentile(untrained["correlations"], 99))
    t = np.asarray(trained["correlations"])
    return float((t <= cut).mean()), cut


FILTER_STRUCTURE = "the filters' spatial structure (neighbour correlation)"


def _half_unstructured(rows):
    share, cut = unstructured_share(rows["untrained filters"], rows["trained filters"])
    return 0.25 <= share <= 0.75, {"trained_share_without_structure": share, "untrained_99th_percentile": cut}


def _says_unstructured(rows, m):
    share, _ = unstructured_share(rows["untrained filters"], rows["trained filters"])
    return f"{share:.0%} of the trained filters show no more spatial structure than untrained ones."


FIGURE_5 = (Claim(
    "no discernable pattern at all is visible in the weights of around half of the input convolutional filters.",
    "between a quarter and three quarters of the trained filters ('around half') show no more spatial structure "
    "(neighbour correlation) than the untrained filters' 99th percentile",
    ("untrained filters", "trained filters"), _half_unstructured, descent=False, measure=FILTER_STRUCTURE,
    says=_says_unstructured),)


def _l16_stem_accurate(rows, m):
    l16, b32 = rows["untrained L/16 stem"], rows["untrained B/32 stem"]
    return m_over_r(l16) < 1 and m.better(l16, b32, SUBSTANTIALLY), {"L/16 stem m_g/m_r": m_over_r(l16)}


def _l16_filters_unstructured(rows):
    share, cut = unstructured_share(rows["untrained filters"], rows["trained filters"])
    return share > MOST, {"trained_share_without_structure": share, "untrained_99th_percentile": cut}


def _says_l16(rows, m):
    l16, b32 = rows["untrained L/16 stem"], rows["untrained B/32 stem"]
    return (f"The untrained L/16 stem ends with m_g/m_r {m_over_r(l16):.2f} and {far(m, m.worse(l16, b32))} than the "
            f"untrained B/32 stem (the write-up: accurate without training).")


FIGURE_6 = (
    Claim("It can therefore be hypothesized that training is not necessary for accurate input representation for "
          "the procesing convolution of ViT L 16, and indeed this is found to be the case.",
          "the untrained ViT-L/16 stem (overcomplete: 768 numbers a patch into 1,024) reaches m_g < m_r and ends "
          "at least 20% closer than the untrained ViT-B/32 stem (undercomplete: 3,072 into 768), the paper's "
          "contrast; any linear stem reaches m_g < m_r, so the bar alone is not the test",
          ("untrained L/16 stem", "untrained B/32 stem"), _l16_stem_accurate, metrics=DISTANCE_FIRST,
          says=_says_l16),
    Claim("Note the lack of consistent wavelet weight patterns in the input convolution, even after training",
          "more than half of the trained ViT-L/16 stem filters show no more structure than the untrained "
          "filters' 99th percentile (figure 5's rule)",
          ("untrained filters", "trained filters"), _l16_filters_unstructured, descent=False,
          measure=FILTER_STRUCTURE, says=_says_unstructured),
)


# --- figure 7 ---------------------------------------------------------------------------------------

LONG = "encoder 12, 105k steps"


def _decline_at_fixed_steps(rows, m):
    r = m.worse(rows["encoder 12"], rows["encoder 1"])
    return r >= CLEARLY, {f"{m.short} encoder 12 worse than 1": r}


def _long_run_beats_encoder_1(rows, m):
    long, first = rows[LONG], rows["encoder 1"]
    if long["steps"] <= first["steps"]:
        raise NotChecked(f"budget too small: the long panel ran {long['steps']:,} steps, no more than encoder 1's "
                         f"{first['steps']:,}")
    return m.better(long, first, CLEARLY), {"steps long": long["steps"], "steps encoder 1": first["steps"]}


_says_decline = says_ends("encoder 12", "At equal steps encoder 12", "encoder 1", "encoder 1", "a decrease with depth")


def _says_long(rows, m):
    long, first = rows[LONG], rows["encoder 1"]
    return (f"Encoder 12 after {long['steps']:,} steps ends {far(m, m.worse(long, first))} than encoder 1 after "
            f"{first['steps']:,} (the write-up: more accurate).")


FIGURE_7 = (
    Claim("there is a decrease in representation accuracy as depth increases in the encoder stack with fixed "
          "($n=1,500$) iterations",
          "at equal steps, encoder 12's reconstruction at least 5% worse than encoder 1's",
          ("encoder 1", "encoder 12"), _decline_at_fixed_steps, metrics=DISTANCE_FIRST, says=_says_decline),
    Claim("increasing the number of iterations of the generation process to $n=105,000$ yields a representation "
          "from the last encoder layer that is more accurate than that obtained with fewer iterations from the "
          "first.",
          "encoder 12 after many more steps (105,000 at the full budget) ends at least 5% closer than encoder 1 "
          "after the figure's steps",
          ("encoder 1", LONG), _long_run_beats_encoder_1, metrics=DISTANCE_FIRST, says=_says_long),
)


# --- figure 8 ---------------------------------------------------------------------------------------

def _positions_change_nothing(rows, m):
    a, b = rows["stem, untrained positions, encoder 1"], rows["stem + trained positions, encoder 1"]
    r = m.worse(b, a)
    return abs(r) <= NO_DIFFERENCE, {f"{m.short} change with the trained positions": r}


def _trained_ln1_helps(rows, m):
    a, b = rows["stem, encoder 1"], rows["stem + ln_1 encoder 1"]
    return m.better(b, a, SUBSTANTIALLY), {}


_says_positions = says_ends("stem + trained positions, encoder 1", "Encoder 1 with the trained positional embedding",
                            "stem, untrained positions, encoder 1", "with the untrained one", "no noticeable difference")


_says_ln1 = says_ends("stem + ln_1 encoder 1", "With the trained ln_1 encoder 1", "stem, encoder 1",
                      "with the trained stem alone", "substantially better")


FIGURE_8 = (
    Claim("re-assigning an untrained vision transformer's positional embedding parameters to that of a trained "
          "model's positional embedding parameters [...] When this is done, however, there is no noticeable "
          "difference in the representation quality.",
          "with the positional embedding added as the model adds it (the paper's own forward left it out, where "
          "no swap could matter), encoder 1 with the trained positional embedding within 5% of encoder 1 with the "
          "untrained one",
          ("stem, untrained positions, encoder 1", "stem + trained positions, encoder 1"), _positions_change_nothing,
          metrics=STRUCTURE_FIRST, says=_says_positions),
    Claim("substituting the first layer norm (the one that is applied before the self-attention module) of the first "
          "encoder for a trained version is capable of increasing the representational quality substantially.",
          "encoder 1 with the trained stem and trained ln_1 ends at least 20% better than with the trained stem "
          "alone ('substantially')",
          ("stem, encoder 1", "stem + ln_1 encoder 1"), _trained_ln1_helps, metrics=STRUCTURE_FIRST, says=_says_ln1),
)


# --- figure 9 ---------------------------------------------------------------------------------------

def _ln1_calms_high_frequencies(rows):
    a, b = rows["trained stem"], rows["trained stem + ln_1"]
    ha, hb = a["high_frequency"], b["high_frequency"]
    return hb <= (1 - CLEARLY) * ha, {"high_frequency_trained_stem": ha, "high_frequency_with_trained_ln_1": hb}


def _says_hf(rows, m):
    return (f"The reconstruction's high-frequency energy is {rows['trained stem']['high_frequency']:.2f} times the "
            f"image's with the trained stem alone and {rows['trained stem + ln_1']['high_frequency']:.2f} times with "
            f"the trained ln_1 (the write-up: ameliorated).")


FIGURE_9 = (Claim(
    "applying a trained input convolution without switching to a trained first layernorm leads to patches of "
    "high-frequency signal in the input generation, which can be ameliorated by swapping to a trained layernorm.",
    "the reconstruction's high-frequency energy (mean squared Laplacian over the image's own) at least 5% lower "
    "with the trained ln_1 than with the trained stem alone",
    ("trained stem", "trained stem + ln_1"), _ln1_calms_high_frequencies, measure="high-frequency energy",
    says=_says_hf),)


# Figure 3 has none: the write-up shows each encoder alone and states no finding about it. Figures 10-16 are in
# checks_removals.
CLAIMS: dict[int, tuple[Claim, ...]] = {
    1: FIGURE_1, 2: FIGURE_2, 3: (), 4: FIGURE_4, 5: FIGURE_5, 6: FIGURE_6, 7: FIGURE_7, 8: FIGURE_8, 9: FIGURE_9,
    10: FIGURE_10, 11: FIGURE_11, 12: FIGURE_12, 13: FIGURE_13, 14: FIGURE_14, 15: FIGURE_15, 16: FIGURE_16,
}
