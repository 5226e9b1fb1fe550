"""On CUDA, one reconstruction step of a whole batch captured as a graph and replayed.

:class:`CudaGraphStep` records the step once; :func:`replay` is the loop over
its replays, reporting through the same :class:`vitrep.descent.loop.Rows` as the
eager loop.
"""

from __future__ import annotations

import logging
import os
from typing import Optional

import torch

from .loop import Rows
from ..models.taps import needs_gather

log = logging.getLogger("vitrep")


class CudaGraphStep:
    """One reconstruction step of a whole batch captured as a CUDA graph.

    Forward to the taps, loss, gradient to the input, the update and the blur
    are recorded once and replayed each step: at batch 1 a step is hundreds of
    small kernels, and launching them one by one from Python costs more than
    running them.  The lr and sigma schedules live on the GPU and a step
    counter advances inside the graph, so a replay needs nothing from the
    host.  After a replay, ``previous`` holds the step's input ``a_n``,
    ``metrics`` its loss and distances, and ``a`` the next input.
    ``VITREP_CUDA_GRAPHS=0`` turns this off (the eager loop, for comparison).
    """

    MIN_STEPS = 8
    captures = 0  # graphs captured in this process (tests check that the graph path ran)

    @classmethod
    def make(cls, a, forward, metrics, step_update, schedule, paths, reset=lambda: None) -> Optional["CudaGraphStep"]:
        """A captured step, or None where the eager loop runs (CPU, few steps, switched off, or capture failed).

        ``step_update(x, grad, lr, sigma)`` takes tensors; ``schedule`` (a
        :class:`vitrep.descent.steps.Schedule`) gives every step's lr and sigma.
        """
        if (a.device.type != "cuda" or schedule.steps < cls.MIN_STEPS
                or os.environ.get("VITREP_CUDA_GRAPHS", "1") == "0" or needs_gather(paths)):
            return None
        try:
            graph = cls(a, forward, metrics, step_update, schedule, reset)
        except RuntimeError as e:  # a model whose forward cannot be captured still runs, eagerly
            log.warning("CUDA graph capture failed (%s); running the eager loop", str(e).splitlines()[0])
            torch.cuda.synchronize(a.device)
            return None
        cls.captures += 1
        return graph

    def __init__(self, a, forward, metrics, step_update, schedule, reset=lambda: None) -> None:
        dev, rows = a.device, list(range(a.shape[0]))
        self.a = a.detach().clone()
        start = self.a.clone()
        lrs, sigmas = schedule.table()
        self.lrs = torch.tensor(lrs, device=dev)
        self.sigmas = torch.tensor(sigmas, device=dev)
        self.n = torch.zeros((), dtype=torch.long, device=dev)

        def step():
            x = self.a.detach().requires_grad_(True)
            with torch.enable_grad():
                outs, losses = forward(x, rows)
                (grad,) = torch.autograd.grad(losses.sum(), x)
            with torch.no_grad():
                m = metrics(x, rows, outs, losses)
                previous = self.a.clone()
                at = self.n.view(1)  # index on the GPU: a 0-d index would be read back to the host
                self.a.copy_(step_update(x, grad, self.lrs.index_select(0, at), self.sigmas.index_select(0, at)))
                self.n.add_(1)
            return previous, m

        side = torch.cuda.Stream(device=dev)  # warm-up on a side stream, as graph capture requires
        side.wait_stream(torch.cuda.current_stream(dev))
        with torch.cuda.stream(side):
            for _ in range(3):
                step()
        torch.cuda.current_stream(dev).wait_stream(side)
        self.a.copy_(start)
        self.n.zero_()
        reset()  # the optimiser's state after the warm-up steps
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.previous, self.metrics = step()

    def replay(self) -> None:
        self.graph.replay()


def replay(graph: CudaGraphStep, rows: Rows, forward, metrics, every: int) -> None:
    """The graph's loop: one replay per step; the host reads back only at report steps."""
    N, B = rows.steps, graph.a.shape[0]
    for n in range(N + 1):
        if n < N:
            graph.replay()
            x, m = graph.previous, graph.metrics
        else:  # the final image: measured, not stepped
            with torch.no_grad():
                x, every_row = graph.a, list(range(B))
                outs, losses = forward(x, every_row)
                m = metrics(x, every_row, outs, losses)
        if n % every and n != N:
            continue
        active = rows.active
        restored, _ = rows.check(n, m["loss"][active], x[active])
        if not rows.active:
            break
        ok = [i for i in rows.active if i not in restored]  # rows never interact: a restored row just goes on
        with torch.no_grad():
            for i in restored:
                graph.a[i].copy_(rows.best_image(i))  # the next replay starts it from its best image
            if rows.measured(n, ok, {k: v[ok] for k, v in m.items()}, x[ok]):
                break
