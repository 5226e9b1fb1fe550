"""Conditioning, measured: the singular values of the Jacobian of a tap's output with respect to the input.

The paper explains poor reconstructions by non-invertibility and poor
conditioning ("self-attention layers are extremely poorly conditioned")
inferred from the descent.  This package measures them at an image ``a``:
``J = dO_l/da`` (outputs ``m`` = the tap's numbers, inputs ``n`` = 3 H W),
never formed, only applied: ``J v`` by forward-mode AD (``torch.func.jvp``)
and ``J^T u`` by the pullback of one ``torch.func.vjp`` (its graph kept for
every product).

- **Top of the spectrum**: Lanczos with full reorthogonalisation on the
  smaller Gram matrix (``J J^T`` when ``m < n``, else ``J^T J``), whose
  eigenvalues are the squared nonzero singular values.  The i-th largest
  Ritz value is never above the i-th largest eigenvalue (interlacing), so
  ``sigma_top[i]`` is a lower bound on the i-th singular value.  Each comes
  with its residual ``r = ||G y - theta y||`` (some eigenvalue lies within
  ``r`` of ``theta``: ``top_error`` is the half-width of the interval that
  gives for sigma) and its change over the last quarter of the iterations
  (``top_change``).  In a dense part of the spectrum a small residual alone
  proves little, as some eigenvalue is near any number there; a value counts
  as converged when both its error and its change are small.
- **Bottom of the spectrum**: the smallest Ritz values of the same run.
  They are *upper bounds* on the smallest singular values (a Ritz value
  never lies below the smallest eigenvalue), with the same residuals: where
  the residual is large the bottom is not reached, and the bound is rough.
- **Condition estimate** ``sigma_top[0] / sigma_bottom[0]``: with a top that
  can only be too small and a bottom that can only be too large, a *lower
  bound* on the condition number of ``J`` on its row space.  Where ``m < n``
  the map also has a null space of dimension at least ``n - m``: inputs
  that the tap cannot tell apart to first order (``null_dim_min``).
- **Effective rank**: the stable rank ``||J||_F^2 / sigma_max^2``, with the
  Frobenius norm from Hutchinson's estimator ``E ||J^T u||^2`` over random
  signs ``u`` (and its standard error).
- **Local gain** ``||J v|| / ||v||`` along ``v = a - a_0`` (the image minus
  the descent's starting noise, or minus a reconstruction): how strongly the
  tap sees the direction a reconstruction has to travel, against the
  spectrum.

Several configs of one model and tap shape (e.g. one tap with each
component removed) run as one batch, as reconstructions do.  Runs go
through the disk memo like every run.  CPU attention runs its plain math
kernel meanwhile (the fused kernels have no forward-mode derivative).

One job a module: :mod:`.config` (what a spectrum depends on),
:mod:`.spectrum` (the result and its bytes), :mod:`.lanczos` (the linear
algebra on any operator), :mod:`.jacobian` (a tap's Jacobian as that
operator, a batch of spectra), :mod:`.runner` (through the memo),
:mod:`.reading` (the table and the sentence), :mod:`.plot` (plot data and
the PNG) and :mod:`.components` (which components to compare, asked of the
model's adapter).  The condition experiment
(:mod:`vitrep.experiments.condition`) puts them together.
"""

from .components import attention_component, compared_components
from .config import DEFAULT_K, ConditionConfig, make_condition_config
from .jacobian import condition_many, forward_mode_friendly, start_noise, tap_operator
from .lanczos import FLOAT32_FLOOR, Operator, frobenius, lanczos, sigma_interval, spectrum_of
from .plot import plot_spectra, spectra_series
from .reading import compare_table, reading
from .runner import condition_key, run_condition
from .spectrum import Spectrum

__all__ = ["DEFAULT_K", "FLOAT32_FLOOR", "ConditionConfig", "Operator", "Spectrum", "attention_component",
           "compare_table", "compared_components", "condition_key", "condition_many", "forward_mode_friendly",
           "frobenius", "lanczos", "make_condition_config", "plot_spectra", "reading", "run_condition",
           "sigma_interval", "spectra_series", "spectrum_of", "start_noise", "tap_operator"]
