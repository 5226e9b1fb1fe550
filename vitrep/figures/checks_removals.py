"""The write-up's claims on removals, attention and the Mixer (figures 10-16), each quote beside its test.

The first half (figures 1-9) and the table of every figure's claims,
:data:`vitrep.figures.checks.CLAIMS`, are in :mod:`vitrep.figures.checks`;
the rules are :mod:`vitrep.figures.verdicts`.
"""

from __future__ import annotations

from .verdicts import farther as far
from .verdicts import says_ends
from .verdicts import (CLEARLY, DISTANCE_FIRST, MOST, STRUCTURE_FIRST, SUBSTANTIALLY, TO_THE_ORIGIN, VAST_MAJORITY,
                       Claim, dist, kept, m_fall, m_over_r)

# --- figure 10 --------------------------------------------------------------------------------------

VARIANTS_10 = {"intact": "", "no attention": "attention", "no LN": "ln_1,ln_2", "no MLP": "mlp"}


def _declines(rows, deep: int, m) -> dict:
    return {v: m.worse(rows[f"{v} encoder {deep}"], rows[f"{v} encoder 1"]) for v in VARIANTS_10}


def _prevented(rows, m, deep: int, prevent: tuple, keep: tuple, share: float):
    """The intact model declines from encoder 1 to ``deep``; ``prevent`` variants keep at most ``1 - share`` of
    that decline, ``keep`` variants more than half of it."""
    rises = _declines(rows, deep, m)
    base = rises["intact"]
    ev = {f"{m.short} {v} worse at encoder {deep} than 1": r for v, r in rises.items()}
    if base < CLEARLY:
        return False, {**ev, "note": "the intact model does not decline, so there is no decline to prevent"}
    ok = all(rises[v] <= (1 - share) * base for v in prevent) and all(rises[v] > MOST * base for v in keep)
    return ok, ev


def _says_prevented(deep: int, said: str):
    def says(rows, m):
        r = _declines(rows, deep, m)
        return (f"From encoder 1 to {deep} the intact model ends {far(m, r['intact'])}, without attention "
                f"{far(m, r['no attention'])}, without layer norms {far(m, r['no LN'])}, without MLPs "
                f"{far(m, r['no MLP'])} (the write-up: {said}).")
    return says


FIGURE_10 = (
    Claim("removal of either self-attention or (both) layer normalizations in each encoder module, but not the MLPs "
          "from each encoder module is sufficient to prevent the vast majority of the decrease in representation "
          "quality with increased depth up to encodrer layer 12",
          "the intact model's reconstruction worsens at least 5% from encoder 1 to 12; without attention and "
          "without layer norms at most a third of that decline remains ('the vast majority' prevented), without "
          "MLPs more than half of it",
          tuple(f"{v} encoder {k}" for v in VARIANTS_10 for k in (1, 12)),
          lambda rows, m: _prevented(rows, m, 12, ("no attention", "no LN"), ("no MLP",), VAST_MAJORITY),
          metrics=STRUCTURE_FIRST,
          says=_says_prevented(12, "removing attention or the layer norms prevents the vast majority of the "
                                   "decline, removing the MLPs does not")),
    Claim("at the deepest layer (24) of this vision transformer we can see that removal of attention modules from "
          "each encoder (but not MLPs or LayerNorms alone) prevent most of the decline in input representation "
          "accuracy.",
          "at encoder 24: without attention at most half of the intact decline from encoder 1 remains ('most' "
          "prevented), without MLPs and without layer norms more than half of it",
          tuple(f"{v} encoder {k}" for v in VARIANTS_10 for k in (1, 24)),
          lambda rows, m: _prevented(rows, m, 24, ("no attention",), ("no MLP", "no LN"), MOST),
          metrics=DISTANCE_FIRST,
          says=_says_prevented(24, "only removing attention prevents most of the decline")),
)


# --- figure 11 --------------------------------------------------------------------------------------

def _attention_passes_little(rows, m):
    ev, ok = {}, True
    for w in ("untrained", "trained"):
        att, mlp = rows[f"{w} attention only"], rows[f"{w} MLP only"]
        ev[f"{w} attention only, share of its start distance left"] = kept(att)
        ev[f"{w} MLP only, share of its start distance left"] = kept(mlp)
        ok = ok and kept(att) > 1 - MOST and m.better(mlp, att, CLEARLY)
    return ok, ev


def _training_helps_attention(rows, m):
    u, t = rows["untrained attention only"], rows["trained attention only"]
    return m.better(t, u, CLEARLY), {}


def _says_little(rows, m):
    k = {f"{w} {x}": kept(rows[f"{w} {x} only"]) for w in ("untrained", "trained") for x in ("attention", "MLP")}
    return (f"Without residuals, attention-only encoders end at {k['untrained attention']:.0%} (untrained) and "
            f"{k['trained attention']:.0%} (trained) of their starting input distance, MLP-only ones at "
            f"{k['untrained MLP']:.0%} and {k['trained MLP']:.0%} (the write-up: attention transmits little of the "
            f"input).")


_says_informative = says_ends("trained attention only", "The trained attention-only encoder", "untrained attention only",
                              "the untrained one", "somewhat more informative")


FIGURE_11 = (
    Claim("self-attention transformations are quite incapable of transmitting most input information, which is why "
          "removing all attention modules from encoders 1 through 4 results in a recovery of the ability of the "
          "output of encoder 4 to accurately represent the input.",
          "without residuals, attention-only encoders close less than half of their starting input distance "
          "(kept > 0.5), untrained and trained, and MLP-only encoders end at least 5% closer",
          ("untrained attention only", "untrained MLP only", "trained attention only", "trained MLP only"),
          _attention_passes_little, metrics=("l2",), says=_says_little),
    Claim("training leads to a somewhat more informative (with respect to the input) self-attention module",
          "the trained attention-only encoder ends at least 5% closer than the untrained one",
          ("untrained attention only", "trained attention only"), _training_helps_attention, metrics=DISTANCE_FIRST,
          says=_says_informative),
)


# --- figure 12 --------------------------------------------------------------------------------------

def _trained_marginal_untrained_not(rows):
    u, t = rows["untrained attention only"], rows["trained attention only"]
    return m_over_r(t) <= (1 - CLEARLY) * m_over_r(u) and m_over_r(u) >= 1, \
        {"untrained_m_g_over_m_r": m_over_r(u), "trained_m_g_over_m_r": m_over_r(t)}


def _says_marginal(rows, m):
    return (f"m_g/m_r ends at {m_over_r(rows['trained attention only']):.2f} for the trained layer and "
            f"{m_over_r(rows['untrained attention only']):.2f} for the untrained one (the write-up: marginally accurate "
            f"when trained, insufficient untrained).")


FIGURE_12 = (Claim(
    "even a single self-attention layer requires an enormous number of gradient descent iterations to achieve a "
    "marginally accurate representation for a trained model, and that even this is insufficient for an untrained "
    "one.",
    "under plain GD after the figure's steps, the trained layer's m_g/m_r at least 5% below the untrained one's, "
    "and the untrained one still at or above the bar (m_g/m_r >= 1); only the trained panel must have moved",
    ("untrained attention only", "trained attention only"), _trained_marginal_untrained_not,
    must_move=("trained attention only",), on_m=True, says=_says_marginal),)


# --- figure 13 --------------------------------------------------------------------------------------

def _m_to_zero_input_not(rows, m):
    r = rows["ln_1 + attention"]
    ev = {"m_g_start": r["start"]["embedding_distance"], "m_g_final": r["final"]["embedding_distance"],
          "m_g_fraction_of_start": m_fall(r), "input_distance_start": r["start"]["input_distance"],
          "input_distance_final": dist(r), "input_distance_fraction_of_start": kept(r)}
    return m_fall(r) <= TO_THE_ORIGIN and kept(r) > 1 - MOST, ev


def _says_non_invertible(rows, m):
    r = rows["ln_1 + attention"]
    return (f"m_g falls to {m_fall(r):.1%} of its start while the input distance stays at {kept(r):.0%} of its start "
            f"(the write-up: m_g heads to zero, the input distance does not).")


FIGURE_13 = (Claim(
    "if we find that the embedding distance heads towards the origin [...] but at the input distance does not head "
    "towards the origin [...] then our representation procedure cannot distinguish between the multiple inputs "
    "that may yield one output. And indeed, this is found to be the case for the representation of the tesla coil "
    "above for one encoder module with layer normalization followed by multi-head attention alone.",
    "m_g falls to a tenth of its start or less while the input distance stays above half of its start",
    ("ln_1 + attention",), _m_to_zero_input_not, metrics=("l2",), says=_says_non_invertible),)


# --- figures 14 and 15 ------------------------------------------------------------------------------

def _no_attention_keeps_more(rows, m):
    return m.better(rows["no attention encoder 12"], rows["no MLP encoder 12"], CLEARLY), {}


_says_highlights = says_ends("no attention encoder 12", "At encoder 12 the trained model without attention",
                             "no MLP encoder 12", "without MLPs",
                             "some highlighting without attention, none without MLPs")


HIGHLIGHTS = ("there is some small highlighting of certain areas of the Tesla coil that exist in the deeper "
              "representations without attention layers but not without MLPs.")
HIGHLIGHTS_TEST = "at encoder 12, the trained model without attention ends at least 5% better than without MLPs"
FIGURE_14 = (Claim(HIGHLIGHTS, HIGHLIGHTS_TEST, ("no attention encoder 12", "no MLP encoder 12"),
                   _no_attention_keeps_more, metrics=STRUCTURE_FIRST, says=_says_highlights),)
FIGURE_15 = (Claim("The same observations are made for an input image of a Dalmatian, which is one of the 1000 "
                   "classes that the vision transformer is trained upon.",
                   HIGHLIGHTS_TEST + " (figure 14's observation, on the second image)",
                   ("no attention encoder 12", "no MLP encoder 12"), _no_attention_keeps_more,
                   metrics=STRUCTURE_FIRST, says=_says_highlights),)


# --- figure 16 --------------------------------------------------------------------------------------

def _mixer_declines(rows, m):
    r = m.worse(rows["p16 block 8"], rows["p16 block 1"])
    return r >= CLEARLY, {f"{m.short} block 8 worse than block 1": r}


def _patch8_closer(rows, m):
    return m.better(rows["p8 block 1"], rows["p16 block 1"], CLEARLY), {}


def _no_norm_minimises_m(rows):
    a, b = rows["p16 block 8"], rows["p16 no norm block 8"]
    return m_over_r(b) <= 0.5 * m_over_r(a), {"intact_m_g_over_m_r": m_over_r(a), "no_norm_m_g_over_m_r": m_over_r(b)}


def _no_norm_clearer(rows, m):
    return m.better(rows["p16 no norm block 8"], rows["p16 block 8"], SUBSTANTIALLY), {}


_says_mixer_declines = says_ends("p16 block 8", "Patch 16: block 8", "p16 block 1", "block 1",
                                 "the accuracy declines with depth")


_says_patch8 = says_ends("p8 block 1", "Block 1 at patch 8", "p16 block 1", "at patch 16",
                         "a smaller patch reduces the error")


def _says_no_norm_m(rows, m):
    return (f"Block 8 ends with m_g/m_r {m_over_r(rows['p16 block 8']):.2f} intact and "
            f"{m_over_r(rows['p16 no norm block 8']):.2f} without layer norms (the write-up: removing them removes the "
            f"difficulty of minimising m).")


_says_no_norm_clearer = says_ends("p16 no norm block 8", "Block 8 without layer norms", "p16 block 8", "intact",
                                  "a large increase in clarity")


FIGURE_16 = (
    Claim("the first encoder layer for the above model is not particularly accurate at autoencoding its input, and "
          "the autencoding's accuracy declines the deeper the layer in question.",
          "patch 16: block 8's reconstruction at least 5% worse than block 1's",
          ("p16 block 1", "p16 block 8"), _mixer_declines, metrics=DISTANCE_FIRST, says=_says_mixer_declines),
    Claim("Specifying a smaller patch size of 8 does reduce the representation error.",
          "block 1 at patch 8 ends at least 5% closer than at patch 16",
          ("p16 block 1", "p8 block 1"), _patch8_closer, metrics=DISTANCE_FIRST, says=_says_patch8),
    Claim("removing this transformation (from every MLP) removes the empirical difficulty of minimizing $m$ via "
          "gradient descent on the input",
          "under plain GD, block 8 without layer norms ends with m_g/m_r at most half the intact block's",
          ("p16 block 8", "p16 no norm block 8"), _no_norm_minimises_m, on_m=True, says=_says_no_norm_m),
    Claim("and visually provides a large increase in representation clarity.",
          "block 8 without layer norms ends at least 20% better than intact ('large')",
          ("p16 block 8", "p16 no norm block 8"), _no_norm_clearer, metrics=STRUCTURE_FIRST,
          says=_says_no_norm_clearer),
)
