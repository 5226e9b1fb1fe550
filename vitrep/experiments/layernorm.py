"""Why layer norm is not invertible, as an experiment: :class:`LayerNormConfig`, :func:`run`, a :class:`~.Report`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from ..layernorm import PAPER_VECTORS
from . import Report


@dataclass(frozen=True)
class LayerNormConfig:
    """The vectors to put through layer norm (default: the paper's three)."""

    vectors: tuple[tuple[float, ...], ...] = PAPER_VECTORS


def make_layernorm_config(texts=()) -> LayerNormConfig:
    """Vectors from a person's text such as ``'0,2,4'`` (none: the paper's three)."""
    from ..layernorm import parse_vector

    return LayerNormConfig(tuple(tuple(parse_vector(t)) for t in texts) or PAPER_VECTORS)


def run(config: LayerNormConfig, memo=None, executor=None, progress: Optional[Callable] = None) -> Report:
    """Each vector's mean, spread and layer-norm output, and whether they all map to one output."""
    from ..layernorm import explain, same_output

    vectors = [list(v) for v in config.vectors]
    rows = explain(vectors)
    lines = [f"{str([round(x, 4) for x in r.vector]):<28} mean {r.mean:8.4f}  std {r.std:8.4f}  ->  "
             f"{[round(x, 4) for x in r.output]}" for r in rows]
    if same_output(vectors):
        lines.append("All map to one output: the mean and the spread are gone, so layer norm cannot be inverted.")
    else:
        lines.append("These differ after layer norm: they are not shifts and scalings of one another.")
    return Report("layernorm", "Layer norm", lines,
                  [{"vector": r.vector, "mean": r.mean, "std": r.std, "output": r.output} for r in rows], {}, [], rows)
