"""The descent loop shared by reconstruction and class generation, and the bookkeeping of its rows.

A descent optimises a batch of images ``a`` (one row per run).  This is the
loop of the descent package, in the manner of lucent's ``optvis``:
objectives (:mod:`.objectives`), parameterisations (:mod:`.param`), steps
(:mod:`.steps`) and the recorder (:mod:`.record`) are apart, and
:mod:`vitrep.reconstruction` and :mod:`vitrep.generate` are short recipes over
them.  What it optimises is injected, as lucent does: ``forward(x, rows)`` gives the
outputs and one loss per row, ``update(x, grad, n, rows)`` takes a step
(step size, blur, clamp: the caller's schedule), ``view(a, n)`` picks what
the model sees (the whole image, or a crop of a larger canvas) and
``paste(a, new, n, rows)`` writes the step back.  No hooks, no model
surgery: the caller's functions are plain.

:class:`Rows` is the reporting every loop variant shares (the eager loop
here and the CUDA-graph replay of :mod:`vitrep.descent.cudagraph`): which rows are
still going, the blow-up guard and its back-offs, recording a report step
and asking the progress callback whether to stop.
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import torch

MAX_BACKOFFS = 4  # a fifth blow-up ends the row as diverged
BLOWUP_FACTOR = 10.0  # loss this many times its best so far = a blow-up
BLOWUP_PIXEL = 20.0  # a pixel this far from 0.5 = running off (images live in [0, 1])


class BlowupGuard:
    """Watches each row's loss and image; at a blow-up the row goes back to its best image.

    A blow-up is a non-finite loss, a loss ``BLOWUP_FACTOR`` times its best so
    far, or a pixel ``BLOWUP_PIXEL`` away from mid-grey (patches running off).
    The row's best image (lowest loss) is kept; on a blow-up it is restored
    and the caller scales the row's step by 1/4.  After ``MAX_BACKOFFS``
    back-offs the next blow-up ends the row as diverged.  Off (``backoff``
    False), a non-finite loss still ends a row: nothing else is watched.
    """

    def __init__(self, rows: int, enabled: bool) -> None:
        self.enabled = enabled
        self.best_loss = [math.inf] * rows
        self.best: list[Optional[torch.Tensor]] = [None] * rows
        self.backoffs = [0] * rows

    def check(self, n: int, rows: list[int], losses: torch.Tensor, x: torch.Tensor) -> tuple[list[int], list[int]]:
        values = losses.tolist()
        far = ((x - 0.5).abs().flatten(1).amax(1) > BLOWUP_PIXEL).tolist() if self.enabled else [False] * len(rows)
        restored, dead = [], []
        for j, i in enumerate(rows):
            v = values[j]
            blown = not math.isfinite(v) or (self.enabled and (far[j] or v > BLOWUP_FACTOR * self.best_loss[i]))
            if blown:
                if not self.enabled or self.best[i] is None or self.backoffs[i] >= MAX_BACKOFFS:
                    dead.append(i)
                else:
                    self.backoffs[i] += 1
                    restored.append(i)
            elif v < self.best_loss[i]:
                self.best_loss[i] = v
                if self.enabled:
                    self.best[i] = x[j].detach().clone()
        return restored, dead

    def best_image(self, row: int) -> torch.Tensor:
        return self.best[row]



Forward = Callable[[torch.Tensor, list], tuple]  # (x, rows) -> (outputs, losses (len(rows),))
Metrics = Callable[[torch.Tensor, list, object, torch.Tensor], dict]  # (x, rows, outputs, losses) -> per-row tensors


class Rows:
    """The rows of one descent: which go on, how each ended, and what happens at a report step.

    ``record(n, rows, metrics, x)`` stores step ``n`` of ``rows``; ``report(n)``
    tells the caller's progress callback and returns True to stop;
    ``on_restore(i)`` hears that row ``i`` was sent back to its best image
    (the update rule then backs off).
    """

    def __init__(self, count: int, steps: int, guard: BlowupGuard, record: Callable, report: Callable[[int], bool],
                 on_restore: Callable[[int], None] = lambda i: None) -> None:
        self.active = list(range(count))
        self.status = ["done"] * count
        self.steps, self.guard = steps, guard
        self.record, self.report, self.on_restore = record, report, on_restore
        self.steps_done = 0

    def check(self, n: int, losses: torch.Tensor, x: torch.Tensor) -> tuple[list[int], list[int]]:
        """The blow-up guard at step ``n`` over the active rows: (restored, diverged); diverged rows leave."""
        restored, dead = self.guard.check(n, self.active, losses, x)
        for i in restored:
            self.on_restore(i)
        for i in dead:
            self.status[i] = f"diverged at step {n}"
        self.active = [i for i in self.active if i not in dead]
        return restored, dead

    def best_image(self, i: int) -> torch.Tensor:
        return self.guard.best_image(i)

    def measured(self, n: int, rows: list[int], metrics: dict, x: torch.Tensor) -> bool:
        """Step ``n`` of ``rows`` is measured: record it, tell the callback; True when the run stops here."""
        self.steps_done = n
        if rows:
            self.record(n, rows, metrics, x)
        if self.report(n) and n < self.steps:
            for i in self.active:
                self.status[i] = "stopped"
            return True
        return False

    def steps_of(self, i: int) -> int:
        """Steps row ``i`` took: to its divergence, else as far as the run went."""
        s = self.status[i]
        return int(s.rsplit(" ", 1)[1]) if s.startswith("diverged") else self.steps_done


def _paste(a: torch.Tensor, new: torch.Tensor, n: int, rows: list[int]) -> torch.Tensor:
    """The default write-back: the stepped rows replace theirs."""
    if len(rows) == a.shape[0]:
        return new
    a = a.clone()
    a[rows] = new
    return a


def descend(a: torch.Tensor, rows: Rows, forward: Forward, metrics: Metrics,
            update: Callable[[torch.Tensor, torch.Tensor, int, Optional[list]], torch.Tensor],
            every: int, check_every: int, view: Optional[Callable] = None, paste: Callable = _paste) -> torch.Tensor:
    """Descend for ``rows.steps`` steps from ``a``; returns the final ``a``.

    At each step ``n`` (and once more after the last): the model's view of the
    active rows goes forward; at a check step the guard looks at the losses
    (a restored or diverged row changes the batch, which then goes forward
    again); at a report step (every ``every`` steps and the last) the rows
    are measured and reported; then the gradient to the input is taken and
    ``update`` steps.
    """
    N, B = rows.steps, a.shape[0]
    for n in range(N + 1):
        a, seen = view(a, n) if view is not None else (a, a)
        x = (seen if len(rows.active) == B else seen[rows.active]).detach().requires_grad_(n < N)
        with torch.enable_grad():
            outs, losses = forward(x, rows.active)
        is_report = n % every == 0 or n == N
        if is_report or n % check_every == 0:
            restored, dead = rows.check(n, losses.detach(), x.detach())
            if not rows.active:
                break
            if restored or dead:  # those rows change or leave; the others go on undisturbed
                a = a.detach().clone()
                for i in restored:
                    a[i] = rows.best_image(i)
                a, seen = view(a, n) if view is not None else (a, a)
                x = (seen if len(rows.active) == B else seen[rows.active]).detach().requires_grad_(n < N)
                with torch.enable_grad():
                    outs, losses = forward(x, rows.active)
        rows.steps_done = n
        if is_report:
            with torch.no_grad():
                m = metrics(x, rows.active, outs, losses)
            if rows.measured(n, rows.active, m, x.detach()):
                break
        if n == N:
            break
        (grad,) = torch.autograd.grad(losses.sum(), x)
        with torch.no_grad():
            new = update(x, grad, n, None if len(rows.active) == B else rows.active)
            a = paste(a, new, n, rows.active)
    return a
