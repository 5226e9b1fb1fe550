"""The spectra as plot data (:func:`spectra_series`, what a page draws with plotly) and as a PNG (matplotlib)."""

from __future__ import annotations

from typing import Sequence

from .spectrum import Spectrum


def spectra_series(spectra: Sequence[Spectrum], labels: Sequence[str]) -> list[dict]:
    """One series per spectrum: its label, the top (largest first) and the bottom (smallest first) with their
    error bars; ``x`` counts from 1 at each end."""
    return [{"label": label, "top_x": list(range(1, len(s.sigma_top) + 1)), "top": list(s.sigma_top),
             "top_error": list(s.top_error), "bottom_x": list(range(1, len(s.sigma_bottom) + 1)),
             "bottom": list(s.sigma_bottom), "bottom_error": list(s.bottom_error)}
            for s, label in zip(spectra, labels)]


def plot_spectra(spectra: Sequence[Spectrum], labels: Sequence[str], path, title: str = "") -> None:
    """The spectra overlaid on a log scale, top and bottom ends with their error bars, as a PNG (matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=110)
    for s in spectra_series(spectra, labels):
        ax.errorbar(s["top_x"], s["top"], yerr=s["top_error"], marker="o", ms=3, capsize=2, label=s["label"])
        bx.errorbar(s["bottom_x"], s["bottom"], yerr=s["bottom_error"], marker="o", ms=3, capsize=2,
                    label=s["label"])
    ax.set(yscale="log", xlabel="i (largest first)", ylabel="singular value of J", title="top of the spectrum")
    bx.set(yscale="log", xlabel="i (smallest first)", ylabel="upper bound on the singular value",
           title="bottom of the spectrum (Ritz values)")
    for a in (ax, bx):
        a.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
