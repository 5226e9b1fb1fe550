"""The spectra read for a person: one row per spectrum, and one sentence against the write-up's claim."""

from __future__ import annotations

from typing import Optional, Sequence

from .components import attention_component
from .spectrum import Spectrum

CLAIM = "\"self-attention layers are extremely poorly conditioned\""


def compare_table(spectra: Sequence[Spectrum], labels: Sequence[str]) -> list[dict]:
    """One row per spectrum: what the README's table shows."""
    rows = []
    for s, label in zip(spectra, labels):
        top, bottom = s.converged()
        rows.append({"removed": label, "sigma_max": s.sigma_top[0], "sigma_max_error": s.top_error[0],
                     "sigma_min_bound": s.sigma_bottom[0], "sigma_min_error": s.bottom_error[0],
                     "condition_lower_bound": s.condition_estimate, "effective_rank": s.effective_rank,
                     "gain": s.gain, "converged_top": top, "converged_bottom": bottom, "seconds": s.seconds})
    return rows


def _intact_and_attention(spectra: Sequence[Spectrum]) -> tuple[Optional[Spectrum], Optional[Spectrum]]:
    """The spectrum with nothing removed and the one with only the model's token mixing removed (by their
    surgery, whatever the labels say)."""
    intact = next((s for s in spectra if not s.config.recon.surgery.remove), None)
    attn = None
    if spectra:
        mixing = attention_component(spectra[0].config.recon.model.adapter)
        attn = next((s for s in spectra if mixing and s.config.recon.surgery.remove == (mixing,)), None)
    return intact, attn


def reading(spectra: Sequence[Spectrum], labels: Sequence[str] = ()) -> str:
    """One sentence reading the intact and attention-removed spectra against the write-up's claim, saying only
    what the estimates support (a condition number is ranked only where the bottom of both spectra converged).
    ``labels`` are not needed (the spectra's own surgeries say which is which); kept for callers that pass them."""
    intact, attn = _intact_and_attention(spectra)
    if intact is None or attn is None:
        return (f"Compare the intact layer with attention removed to read the paper's claim that {CLAIM[1:-1]}.")
    a, b = intact.condition_estimate, attn.condition_estimate
    if intact.converged()[1] and attn.converged()[1]:
        verb = "higher" if a > b else "lower"
        return (f"The paper: {CLAIM}. Here the intact tap's "
                f"condition number is {a:.3g} and {b:.3g} without attention: {verb} with attention, so this "
                f"measurement {'supports' if a > b else 'does not support'} the claim at this tap.")
    return (f"The paper: {CLAIM}. Here the condition number is at "
            f"least {a:.3g} intact and at least {b:.3g} without attention, but the bottom of the spectrum has not "
            f"converged in {intact.iterations} Lanczos steps, so these are lower bounds that do not rank the two; "
            f"more iterations would.")
