"""Conditioning, measured: the singular values of the Jacobian of a tap's output with respect to the input.

The paper explains poor reconstructions by non-invertibility and poor
conditioning ("self-attention layers are extremely poorly conditioned")
inferred from the descent.  This module measures them at an image ``a``:
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
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Optional, Sequence

import torch

from .running.memo import Memo, make_key, torch_release
from .packing import pack, unpack
from .config import ReconstructConfig, validate
from .errors import ConfigError
from .images import content_hash
from .models.weights import LoadedModel, weights_identity
from .models.pool import load_model
from .models.registry import resolve_device
from .result import Progress
from .models.taps import run_paths, tap_path

DEFAULT_K = 16


@dataclass(frozen=True)
class ConditionConfig:
    """What a spectrum depends on: the reconstruction config's model, tap, surgery and input options, and
    the estimator's own settings (frozen: a cache key)."""

    recon: ReconstructConfig
    k: int = DEFAULT_K  # singular values reported at each end
    iterations: int = 0  # Lanczos steps; 0: max(5k, 80), at most the Gram's size
    probes: int = 8  # random sign vectors for the Frobenius norm
    seed: int = 0

    def lanczos_steps(self, dim: int) -> int:
        return min(dim, self.iterations or max(5 * self.k, 80))

    def to_dict(self) -> dict:
        return {"recon": self.recon.to_dict(), "k": self.k, "iterations": self.iterations, "probes": self.probes,
                "seed": self.seed}


def make_condition_config(recon: ReconstructConfig, k: int = DEFAULT_K, iterations: int = 0, probes: int = 8,
                          seed: int = 0) -> ConditionConfig:
    """Validate the estimator's settings (k against the dimensions is checked once the tap's size is known)."""
    recon = validate(recon)
    for name, v, low in (("k", k, 1), ("iterations", iterations, 0), ("probes", probes, 1), ("seed", seed, 0)):
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise ConfigError(f"{name} must be a whole number of at least {low}, not {v!r}.")
    if iterations and iterations < k:
        raise ConfigError(f"{iterations} Lanczos iterations cannot give {k} singular values; give at least {k}.")
    return ConditionConfig(recon, k, iterations, probes, seed)


@dataclass
class Spectrum:
    """The estimated spectrum of one tap's Jacobian at one image (plain numbers: JSON in the memo)."""

    config: ConditionConfig
    input_dim: int
    output_dim: int
    side: str  # "output" (Lanczos on J J^T) or "input" (on J^T J)
    sigma_top: list[float]
    top_residual: list[float]  # ||G y - theta y|| of each top Ritz pair (units of sigma^2)
    top_error: list[float]  # half-width of the interval in which some singular value lies
    top_change: list[float]  # relative change over the last quarter of the iterations
    sigma_bottom: list[float]  # smallest Ritz values: upper bounds on the smallest singular values
    bottom_residual: list[float]
    bottom_error: list[float]
    bottom_change: list[float]
    frobenius_sq: float
    frobenius_sq_se: float
    gain: Optional[float]  # ||J v|| / ||v|| along v = a - a_0
    iterations: int
    matvecs: int
    seconds: float
    status: str = "done"  # or "stopped"
    from_cache: bool = False

    @property
    def null_dim_min(self) -> int:
        """Inputs the tap cannot tell apart to first order: at least n - m dimensions when the tap is smaller."""
        return max(0, self.input_dim - self.output_dim)

    @property
    def condition_estimate(self) -> float:
        """sigma_top[0] / sigma_bottom[0]: a lower bound on the condition number of J on its row space."""
        return self.sigma_top[0] / self.sigma_bottom[0] if self.sigma_bottom and self.sigma_bottom[0] > 0 else math.inf

    @property
    def effective_rank(self) -> float:
        """The stable rank ||J||_F^2 / sigma_max^2 (at most the rank)."""
        return self.frobenius_sq / self.sigma_top[0] ** 2 if self.sigma_top and self.sigma_top[0] > 0 else 0.0

    @property
    def effective_rank_se(self) -> float:
        return self.frobenius_sq_se / self.sigma_top[0] ** 2 if self.sigma_top and self.sigma_top[0] > 0 else 0.0

    def converged(self, tol: float = 1e-2) -> tuple[int, int]:
        """How many leading top and bottom values are converged: relative error and change both below ``tol``."""
        def count(sig, err, chg):
            n = 0
            for s, e, c in zip(sig, err, chg):
                if not (e <= tol * s and c <= tol):
                    break
                n += 1
            return n

        return (count(self.sigma_top, self.top_error, self.top_change),
                count(self.sigma_bottom, self.bottom_error, self.bottom_change))

    def summary(self) -> dict:
        """The documented ``condition.json`` content."""
        top, bottom = self.converged()
        return {"config": self.config.to_dict(), "status": self.status, "input_dim": self.input_dim,
                "output_dim": self.output_dim, "lanczos_on": "J J^T" if self.side == "output" else "J^T J",
                "sigma_top": self.sigma_top, "sigma_top_is": "lower bounds on the largest singular values (Ritz)",
                "top_residual": self.top_residual, "top_error": self.top_error, "top_change": self.top_change,
                "sigma_bottom": self.sigma_bottom, "bottom_residual": self.bottom_residual,
                "bottom_error": self.bottom_error, "bottom_change": self.bottom_change,
                "sigma_bottom_is": "upper bounds on the smallest singular values (Ritz values)",
                "condition_estimate": self.condition_estimate,
                "condition_estimate_is": "a lower bound on sigma_max / sigma_min of J on its row space",
                "null_dim_min": self.null_dim_min, "frobenius_sq": self.frobenius_sq,
                "effective_rank": self.effective_rank, "effective_rank_se": self.effective_rank_se,
                "converged_top": top, "converged_bottom": bottom, "gain_along_image_minus_start": self.gain,
                "iterations": self.iterations, "matvecs": self.matvecs, "seconds": self.seconds,
                "seconds_per_matvec_pair": self.seconds / max(1, self.iterations), "from_cache": self.from_cache}

    def to_bytes(self) -> bytes:
        meta = {k: v for k, v in asdict(self).items() if k not in ("config", "from_cache")}
        meta["config"] = self.config.to_dict()
        return pack(meta, {})

    @classmethod
    def from_bytes(cls, data: bytes) -> "Spectrum":
        meta, _ = unpack(data)
        c = meta.pop("config")
        cfg = ConditionConfig(ReconstructConfig.from_dict(c["recon"]), c["k"], c["iterations"], c["probes"], c["seed"])
        return cls(config=cfg, from_cache=True, **meta)


# --- the linear algebra, on any batched operator -----------------------------------------------------

@dataclass
class Operator:
    """``J`` of each batch row, applied, never formed: ``jv(v)`` (B, n) -> (B, m), ``jtu(u)`` (B, m) -> (B, n)."""

    jv: Callable[[torch.Tensor], torch.Tensor]
    jtu: Callable[[torch.Tensor], torch.Tensor]
    n: int
    m: int
    rows: int
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    matvecs: int = 0

    def gram(self, x: torch.Tensor) -> torch.Tensor:
        """The smaller Gram matrix times ``x``: ``J J^T u`` when m < n, else ``J^T J v``."""
        self.matvecs += 2
        return self.jv(self.jtu(x)) if self.m < self.n else self.jtu(self.jv(x))

    @property
    def dim(self) -> int:
        return min(self.m, self.n)


def lanczos(op: Operator, steps: int, seed: int = 0,
            progress: Optional[Callable[[int, torch.Tensor], bool]] = None) -> tuple[list, list, int, bool]:
    """Lanczos with full reorthogonalisation on ``op.gram``, every row at once.

    Returns per row ``(Ritz values ascending, their residuals |beta_j s_ji|,
    the same-rank values at three quarters of the steps)``, the steps taken
    and whether ``progress(step, largest Ritz values)`` asked to stop (by
    returning True).
    """
    d, B = op.dim, op.rows
    # every row starts from the seed's vector, so a row of a batch is the row run alone
    q = torch.randn(d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).expand(B, d).to(op.device)
    q = q / q.norm(dim=1, keepdim=True)
    Q, alphas, betas = [q], [], []
    prev, beta = torch.zeros_like(q), torch.zeros(B, dtype=torch.float64, device=op.device)
    for j in range(steps):
        w = op.gram(q.float()).double()
        alpha = (w * q).sum(1)
        w = w - alpha[:, None] * q - beta[:, None] * prev
        basis = torch.stack(Q, 1)  # (B, j+1, d)
        for _ in range(2):  # twice is enough (Kahan): keeps the basis orthogonal to rounding
            w = w - torch.einsum("bj,bjd->bd", torch.einsum("bd,bjd->bj", w, basis), basis)
        beta = w.norm(dim=1)
        alphas.append(alpha)
        betas.append(beta)
        if j + 1 == max(1, (3 * steps) // 4):
            earlier = _ritz(alphas, betas)[0]  # to see which values still move
        if progress is not None and j + 1 < steps and progress(j + 1, _ritz(alphas, betas)[0][:, -1]):
            theta, resid = _ritz(alphas, betas)
            return _rows(theta, resid, earlier if "earlier" in locals() else theta), len(alphas), True
        if j + 1 == steps or bool((beta <= 1e-12 * alphas[0].abs().clamp_min(1e-30)).all()):
            break  # an invariant subspace: the Ritz values are exact
        prev, q = q, w / beta.clamp_min(1e-300)[:, None]
        Q.append(q)
    theta, resid = _ritz(alphas, betas)
    return _rows(theta, resid, earlier if "earlier" in locals() else theta), len(alphas), False


def _rows(theta: torch.Tensor, resid: torch.Tensor, earlier: torch.Tensor) -> list[tuple[list, list, list]]:
    """Per row: Ritz values (ascending), residuals, and the same-rank Ritz values of the earlier step
    (the earlier run has fewer values: its ends are matched to these ends)."""
    out = []
    for b in range(theta.shape[0]):
        t, e = theta[b].tolist(), earlier[b].tolist()
        h = len(e) // 2
        matched = e[:h] + [math.nan] * (len(t) - len(e)) + e[h:]  # bottom with bottom, top with top
        out.append((t, resid[b].tolist(), matched))
    return out


def _ritz(alphas: list, betas: list) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues of each row's tridiagonal matrix and the residual of each Ritz pair."""
    a, b = torch.stack(alphas, 1), torch.stack(betas, 1)  # (B, j)
    k = a.shape[1]
    T = torch.diag_embed(a)
    if k > 1:
        T = T + torch.diag_embed(b[:, :-1], 1) + torch.diag_embed(b[:, :-1], -1)
    theta, S = torch.linalg.eigh(T)
    return theta.clamp_min(0), (b[:, -1:] * S[:, -1, :]).abs()


FLOAT32_FLOOR = 8 * torch.finfo(torch.float32).eps  # the Gram's products in float32: eigenvalues to about this x the top


def sigma_interval(theta: float, residual: float, top: float = 0.0) -> tuple[float, float]:
    """sigma given a Ritz value of the Gram matrix and its residual: the estimate and the interval's half-width.

    ``top`` (the largest Ritz value) adds the float32 floor: the operator itself is applied in float32, so
    eigenvalues within about ``FLOAT32_FLOOR * top`` of each other (or of 0) are not told apart.
    """
    residual = residual + FLOAT32_FLOOR * top
    lo, hi = math.sqrt(max(theta - residual, 0.0)), math.sqrt(theta + residual)
    return math.sqrt(theta), (hi - lo) / 2


def frobenius(op: Operator, probes: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Hutchinson's estimate of ||J||_F^2 per row, ``E ||J^T u||^2`` with random signs ``u``, and its standard error."""
    g = torch.Generator().manual_seed(seed + 1)
    vals = []
    for _ in range(probes):
        u = (torch.randint(0, 2, (op.m,), generator=g) * 2 - 1).float().expand(op.rows, op.m).to(op.device)
        vals.append(op.jtu(u).double().pow(2).sum(1))
        op.matvecs += 1
    v = torch.stack(vals)  # (probes, B)
    se = v.std(0) / math.sqrt(probes) if probes > 1 else torch.full_like(v[0], float("nan"))
    return v.mean(0), se


def spectrum_of(op: Operator, cfg: ConditionConfig, gain_along: Optional[torch.Tensor] = None,
                progress: Optional[Callable] = None) -> list[dict]:
    """Top and bottom of each row's spectrum, the Frobenius norm and the local gain (plain numbers)."""
    if cfg.k > op.dim:
        raise ConfigError(f"k = {cfg.k} is more singular values than this Jacobian has: its smaller side is "
                          f"{op.dim:,} (inputs {op.n:,}, outputs {op.m:,}).")
    t0 = time.perf_counter()
    per_row, steps, stopped = lanczos(op, cfg.lanczos_steps(op.dim), cfg.seed, progress)
    fro, fro_se = frobenius(op, cfg.probes, cfg.seed)
    gains = None
    if gain_along is not None:
        v = gain_along.reshape(op.rows, -1).float()
        gains = (op.jv(v).double().norm(dim=1) / v.double().norm(dim=1).clamp_min(1e-30)).tolist()
        op.matvecs += 1
    out = []
    for b, (thetas, resids, earlier) in enumerate(per_row):
        pairs = [sigma_interval(t, r, max(thetas)) for t, r in zip(thetas, resids)]
        change = [abs(math.sqrt(t) - math.sqrt(max(e, 0))) / max(math.sqrt(t), 1e-30) if e == e else math.inf
                  for t, e in zip(thetas, earlier)]
        k = min(cfg.k, len(pairs))
        top = list(reversed(pairs))[:k]
        bottom = pairs[:k]
        out.append({"sigma_top": [s for s, _ in top], "top_error": [e for _, e in top],
                    "top_residual": list(reversed(resids))[:k], "top_change": list(reversed(change))[:k],
                    "sigma_bottom": [s for s, _ in bottom], "bottom_error": [e for _, e in bottom],
                    "bottom_residual": resids[:k], "bottom_change": change[:k],
                    "frobenius_sq": float(fro[b]), "frobenius_sq_se": float(fro_se[b]),
                    "gain": None if gains is None else float(gains[b]), "iterations": steps,
                    "seconds": time.perf_counter() - t0, "status": "stopped" if stopped else "done"})
    return out


# --- a tap's Jacobian -----------------------------------------------------------------------------------

@contextlib.contextmanager
def forward_mode_friendly():
    """Attention on its plain math kernel for the duration: the fused CPU kernels have no forward-mode derivative
    (torch.func.jvp).  Changes only float rounding; runs hold the device queue meanwhile."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    mha = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with sdpa_kernel(SDPBackend.MATH):
            yield
    finally:
        torch.backends.mha.set_fastpath_enabled(mha)


def tap_operator(lm: LoadedModel, configs: Sequence[ReconstructConfig], image: torch.Tensor) -> tuple[Operator, list]:
    """The batched Jacobian of each config's tap at ``image`` (``(1, 3, H, W)``), and the output shapes."""
    x0 = image.to(lm.device, torch.float32).expand(len(configs), -1, -1, -1).contiguous()
    paths = [tap_path(lm, c.tap, c.surgery, c.pos_embed, c.normalize, fast=False) for c in configs]

    def f(x):
        return tuple(o.reshape(-1) for o in run_paths(x, paths))

    outs, pull = torch.func.vjp(f, x0)
    sizes = {o.numel() for o in outs}
    if len(sizes) != 1:
        raise ConfigError("Rows of one spectrum batch must have taps of one size; run them apart.")
    m, n, B = sizes.pop(), x0[0].numel(), len(configs)

    def jv(v):
        _, t = torch.func.jvp(f, (x0,), (v.reshape(x0.shape),))
        return torch.stack(t)

    def jtu(u):
        (g,) = pull(tuple(u[b] for b in range(B)))
        return g.reshape(B, -1)

    return Operator(jv, jtu, n, m, B, lm.device), [tuple(o.shape) for o in outs]


def start_noise(config: ReconstructConfig, image: torch.Tensor) -> torch.Tensor:
    """The reconstruction's starting noise a_0 for this config (drawn as :func:`vitrep.reconstruction` draws it)."""
    g = torch.Generator().manual_seed(config.seed)
    _, _, H, W = image.shape
    torch.randn(3, H, W, generator=g)  # the a' baseline's noise comes first
    return (torch.randn(3, H, W, generator=g) * config.init_std + config.init_mean).unsqueeze(0)


def condition_many(image: torch.Tensor, configs: Sequence[ConditionConfig], progress=None,
                   lm: Optional[LoadedModel] = None) -> list[Spectrum]:
    """Spectra of several configs that share a model and estimator settings, as one batch."""
    c0 = configs[0]
    for c in configs[1:]:
        if c.recon.model != c0.recon.model or (c.k, c.iterations, c.probes, c.seed) != (c0.k, c0.iterations, c0.probes, c0.seed):
            raise ConfigError("Spectra batched together must share the model and the estimator's settings.")
    image = image if image.dim() == 4 else image.unsqueeze(0)
    lm = lm or load_model(c0.recon.model, c0.recon.device)
    if image.shape[-1] != lm.size:
        raise ConfigError(f"{lm.ref.name} takes {lm.size}x{lm.size} images, not {image.shape[-1]}; prepare the image "
                          f"at the model's size.")
    t0 = time.perf_counter()
    with forward_mode_friendly():
        op, _ = tap_operator(lm, [c.recon for c in configs], image)
        direction = torch.cat([image - start_noise(c.recon, image) for c in configs]).to(lm.device)
        steps = c0.lanczos_steps(op.dim)

        def tell(step, largest):
            if progress is None:
                return False
            rows = [{"step": step, "sigma_max": math.sqrt(float(t))} for t in largest]
            return bool(progress(Progress(step, steps, time.perf_counter() - t0, rows, [])))

        rows = spectrum_of(op, c0, direction, tell)
    return [Spectrum(c, op.n, op.m, "output" if op.m < op.n else "input", r["sigma_top"], r["top_residual"],
                     r["top_error"], r["top_change"], r["sigma_bottom"], r["bottom_residual"], r["bottom_error"],
                     r["bottom_change"], r["frobenius_sq"],
                     r["frobenius_sq_se"], r["gain"], r["iterations"], op.matvecs, time.perf_counter() - t0, r["status"])
            for c, r in zip(configs, rows)]


def condition_key(image: torch.Tensor, config: ConditionConfig) -> str:
    d = config.to_dict()
    d["recon"]["device"] = resolve_device(config.recon.device).type
    for k in ("steps", "optimizer", "lr_start", "lr_end", "loss", "loss_scale", "blur_start", "blur_end", "clamp",
              "report_every", "backoff", "resize"):
        d["recon"].pop(k, None)  # what the descent does is not the Jacobian's business
    return make_key("condition", image=content_hash(image), config=d, weights=weights_identity(config.recon.model),
                    torch=torch_release())


def run_condition(image: torch.Tensor, configs: Sequence[ConditionConfig], memo: Optional[Memo] = None,
                  progress=None, on_wait=None, queue_limit: Optional[int] = None) -> list[Spectrum]:
    """Spectra through the disk memo, misses computed as batches of one tap size, queued for the device."""
    from .running.runs import device_lock

    keys = [condition_key(image, c) for c in configs]
    out: list = [memo.get(k, Spectrum.from_bytes) if memo is not None else None for k in keys]
    todo = [i for i, r in enumerate(out) if r is None]
    groups: dict = {}
    for i in todo:
        groups.setdefault(_shape_group(configs[i]), []).append(i)
    for rows in groups.values():
        def compute(idx: list[int], rows=rows) -> list[Spectrum]:
            picked = [configs[rows[j]] for j in idx]
            with device_lock(picked[0].recon.device, on_wait, queue_limit):
                return condition_many(image, picked, progress)

        if memo is None:
            batch = compute(list(range(len(rows))))
        else:
            batch = memo.get_or_compute_many([keys[i] for i in rows], compute, Spectrum.to_bytes, Spectrum.from_bytes,
                                             keep=lambda s: s.status == "done")
        for i, s in zip(rows, batch):
            out[i] = s
        if any(s.status == "stopped" for s in batch):
            break
    return out


def _shape_group(c: ConditionConfig) -> tuple:
    """Rows that can share a batch: one model, one estimator, one tap (so one output size)."""
    return (c.recon.model, c.recon.tap, c.recon.pos_embed, c.recon.normalize, c.k, c.iterations, c.probes, c.seed)


# --- what the command line writes -------------------------------------------------------------------------

def plot_spectra(spectra: Sequence[Spectrum], labels: Sequence[str], path, title: str = "") -> None:
    """The spectra overlaid on a log scale, top and bottom ends with their error bars, as a PNG (matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=110)
    for s, label in zip(spectra, labels):
        top = range(1, len(s.sigma_top) + 1)
        ax.errorbar(list(top), s.sigma_top, yerr=s.top_error, marker="o", ms=3, capsize=2, label=label)
        bottom = range(1, len(s.sigma_bottom) + 1)
        bx.errorbar(list(bottom), s.sigma_bottom, yerr=s.bottom_error, marker="o", ms=3, capsize=2, label=label)
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


def reading(spectra: Sequence[Spectrum], labels: Sequence[str]) -> str:
    """One sentence reading the intact and attention-removed spectra against the paper's claim, saying only what
    the estimates support (a condition number is ranked only where the bottom of both spectra converged)."""
    by = dict(zip(labels, spectra))
    intact = by.get("none") or next((s for lab, s in by.items() if lab == "intact"), None)
    attn = next((s for lab, s in by.items() if lab.split(",") == ["attention"] or lab == "token_mixing"), None)
    if intact is None or attn is None:
        return ("Compare 'none' with 'attention' to read the paper's claim that self-attention layers are extremely "
                "poorly conditioned.")
    a, b = intact.condition_estimate, attn.condition_estimate
    if intact.converged()[1] and attn.converged()[1]:
        verb = "higher" if a > b else "lower"
        return (f"The paper: \"self-attention layers are extremely poorly conditioned\". Here the intact tap's "
                f"condition number is {a:.3g} and {b:.3g} without attention: {verb} with attention, so this "
                f"measurement {'supports' if a > b else 'does not support'} the claim at this tap.")
    return (f"The paper: \"self-attention layers are extremely poorly conditioned\". Here the condition number is at "
            f"least {a:.3g} intact and at least {b:.3g} without attention, but the bottom of the spectrum has not "
            f"converged in {intact.iterations} Lanczos steps, so these are lower bounds that do not rank the two; "
            f"more iterations would.")
