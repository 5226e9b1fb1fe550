"""Unit objectives: what a visualisation maximises, read at a model's taps and inside its blocks, composable.

Every objective is maximised and gives one score per batch row, read from
the activations at its *sites* (:mod:`.sites`): a tap's output (any layer a
reconstruction can read) or a unit site inside block k (the MLP's hidden
activation, the attention heads' outputs), located by the model's adapter
(:meth:`vitrep.models.families.base.Family.unit_hook`).

=====================  =======================================================
``channel(layer, c)``  channel c at a tap: its mean over tokens (token models)
                       or positions (convolutional maps); at ``logits``, the
                       class logit c
``neuron(layer, c)``   channel c at the middle token (or the centre position)
``mlp(block, u)``      hidden unit u of block k's MLP, after its nonlinearity
                       (Ghiasi et al.'s features), mean over tokens
``head(block, h)``     attention head h of block k: the mean over tokens of
                       the squared norm of its output (before the output
                       projection), how strongly the head writes
``direction(layer, v)`` the mean over tokens of the tap's projection on the
                       unit vector v (a list of numbers, or a seed: a random
                       direction drawn from it)
``logit(c)``           ``channel("logits", c)``
``match(layer)``       minus the distance ‖φ(a) − φ(t)‖ to the chosen image's
                       output at the tap: the reconstruction's objective
=====================  =======================================================

Objectives compose as lucent's do: ``a + b``, ``a - b``, ``2 * a``,
``a * b`` (row by row).  A text form (``"mlp(6, 3) + 0.5 * channel('stem', 2)"``)
is what configs and cache keys hold; :func:`parse` reads it against a model
(layer names through the adapter) without ``eval``.
"""

from __future__ import annotations

import ast
import math
from dataclasses import dataclass
from typing import Callable, Optional

import torch

from ..errors import ConfigError

MAX_TEXT = 20_000  # an objective's text: a direction's vector may be long, never unbounded


@dataclass(frozen=True)
class TapSite:
    """A tap's output (canonical tap name)."""

    tap: str


@dataclass(frozen=True)
class UnitSite:
    """Inside block ``block`` (1-based): ``kind`` is ``mlp`` (hidden activation) or ``head`` (heads' outputs)."""

    block: int
    kind: str


class Objective:
    """A score per row to maximise; ``text`` is its canonical form (configs, cache keys, labels)."""

    text: str = ""
    needs_image = False  # a match: it reads the chosen image's activations (handed in by :meth:`bind`)

    def sites(self) -> frozenset:
        raise NotImplementedError

    def __call__(self, acts: dict) -> torch.Tensor:
        raise NotImplementedError

    def bind(self, target: Callable[[object], torch.Tensor]) -> None:
        """Hand a ``match`` its target's activations (``target(site)``); other objectives need none."""

    # composition
    def __add__(self, other):
        return Combined("+", self, _lift(other))

    def __radd__(self, other):
        return Combined("+", _lift(other), self)

    def __sub__(self, other):
        return Combined("-", self, _lift(other))

    def __rsub__(self, other):
        return Combined("-", _lift(other), self)

    def __mul__(self, other):
        return Combined("*", self, _lift(other))

    def __rmul__(self, other):
        return Combined("*", _lift(other), self)

    def __neg__(self):
        return Combined("*", Constant(-1.0), self)

    def __repr__(self) -> str:
        return f"Objective({self.text})"


def _lift(x) -> Objective:
    if isinstance(x, Objective):
        return x
    if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x):
        return Constant(float(x))
    raise ConfigError(f"Objectives combine with objectives and finite numbers, not {str(x)[:40]!r}.")


class Constant(Objective):
    def __init__(self, value: float) -> None:
        self.value, self.text = value, repr(value)

    def sites(self):
        return frozenset()

    def __call__(self, acts):
        return torch.tensor(self.value)


class Combined(Objective):
    OPS = {"+": torch.add, "-": torch.sub, "*": torch.mul}

    def __init__(self, op: str, a: Objective, b: Objective) -> None:
        self.op, self.a, self.b = op, a, b
        self.text = f"({a.text} {op} {b.text})"
        self.needs_image = a.needs_image or b.needs_image

    def sites(self):
        return self.a.sites() | self.b.sites()

    def bind(self, target):
        self.a.bind(target)
        self.b.bind(target)

    def __call__(self, acts):
        return self.OPS[self.op](self.a(acts), self.b(acts))


def _pool(x: torch.Tensor) -> torch.Tensor:
    """``(B, ...)`` -> ``(B, D)``: the mean over tokens ``(B, T, D)`` or positions ``(B, C, H, W)``."""
    if x.dim() == 2:
        return x
    if x.dim() == 3:
        return x.mean(dim=1)
    return x.flatten(2).mean(dim=2)


def _width(x: torch.Tensor) -> int:
    return x.shape[1] if x.dim() in (2, 4) else x.shape[-1]


class _AtTap(Objective):
    def __init__(self, tap: str, text: str) -> None:
        self.tap, self.text = tap, text

    def sites(self):
        return frozenset({TapSite(self.tap)})

    def at(self, acts) -> torch.Tensor:
        return acts[TapSite(self.tap)]

    def _check(self, x: torch.Tensor, c: int, what: str) -> None:
        if not 0 <= c < _width(x):
            raise ConfigError(f"{what} {c} does not exist at {self.tap}: it has {what}s 0-{_width(x) - 1}.")


class _Numbered(_AtTap):
    name = ""

    def __init__(self, tap: str, c: int) -> None:
        super().__init__(tap, f"{self.name}({tap!r}, {c})")
        self.c = c


class Channel(_Numbered):
    name = "channel"

    def __call__(self, acts):
        x = self.at(acts)
        self._check(x, self.c, "channel")
        return _pool(x)[:, self.c]


class Neuron(_Numbered):
    name = "neuron"

    def __call__(self, acts):
        x = self.at(acts)
        self._check(x, self.c, "channel")
        if x.dim() == 2:
            return x[:, self.c]
        if x.dim() == 3:
            return x[:, x.shape[1] // 2, self.c]
        return x[:, self.c, x.shape[2] // 2, x.shape[3] // 2]


class Direction(_AtTap):
    def __init__(self, tap: str, vector) -> None:
        """``vector``: numbers, or an int seed (a random unit direction of the tap's width, drawn from it)."""
        super().__init__(tap, f"direction({tap!r}, {vector!r})")
        self.vector = vector

    def unit_vector(self, width: int, device) -> torch.Tensor:
        if isinstance(self.vector, int):
            v = torch.randn(width, generator=torch.Generator().manual_seed(self.vector))
        else:
            v = torch.tensor([float(t) for t in self.vector])
            if v.numel() != width:
                raise ConfigError(f"The direction has {v.numel()} numbers but {self.tap} is {width} wide.")
        n = v.norm()
        if not torch.isfinite(n) or n == 0:
            raise ConfigError("A direction must be a non-zero vector of finite numbers.")
        return (v / n).to(device)

    def __call__(self, acts):
        x = self.at(acts)
        v = self.unit_vector(_width(x), x.device)
        return _pool(x) @ v


class Match(_AtTap):
    """Minus ‖φ(a) − φ(t)‖ at the tap, φ(t) the chosen image's output there (handed in by :meth:`bind`)."""

    needs_image = True

    def __init__(self, tap: str) -> None:
        super().__init__(tap, f"match({tap!r})")
        self.target: Optional[torch.Tensor] = None

    def bind(self, target):
        self.target = target(TapSite(self.tap)).detach()

    def __call__(self, acts):
        if self.target is None:
            raise ConfigError("match(...) needs an image to match: choose one.")
        x = self.at(acts)
        return -(x - self.target).flatten(1).norm(dim=1)


class _InBlock(Objective):
    kind = ""

    def __init__(self, block: int, u: int) -> None:
        self.block, self.u = block, u
        self.text = f"{self.kind}({block}, {u})"

    def sites(self):
        return frozenset({UnitSite(self.block, self.kind)})


class MlpUnit(_InBlock):
    kind = "mlp"

    def __call__(self, acts):
        x = acts[UnitSite(self.block, "mlp")]  # (B, T, hidden) or (B, hidden, H, W)
        if not 0 <= self.u < _width(x):
            raise ConfigError(f"Block {self.block}'s MLP has hidden units 0-{_width(x) - 1}, not {self.u}.")
        return _pool(x)[:, self.u]


class Head(_InBlock):
    kind = "head"

    def __call__(self, acts):
        x = acts[UnitSite(self.block, "head")]  # (B, T, heads, d)
        if not 0 <= self.u < x.shape[2]:
            raise ConfigError(f"Block {self.block}'s attention has heads 0-{x.shape[2] - 1}, not {self.u}.")
        return x[:, :, self.u].pow(2).sum(-1).mean(1)


# --- the text form ------------------------------------------------------------------------------

KINDS = ("channel", "neuron", "mlp", "head", "direction", "logit", "match")


def term(kind: str, layer, unit=None, lm=None) -> Objective:
    """One term, its layer read by ``lm``'s adapter when given (``6`` -> ``encoder-6``)."""
    if kind not in KINDS:
        raise ConfigError(f"{kind!r} is not an objective; choose from {', '.join(KINDS)}.")
    if kind == "logit":
        return Channel("logits", _whole(layer, "class"))
    if kind in ("mlp", "head"):
        k = _whole(layer, "block")
        if lm is not None and not 1 <= k <= lm.depth:
            raise ConfigError(f"This model has blocks 1 to {lm.depth}, so block {k} does not exist.")
        return (MlpUnit if kind == "mlp" else Head)(k, _whole(unit, "mlp unit" if kind == "mlp" else "head"))
    tap = lm.adapter.parse_tap(layer, lm.depth) if lm is not None else str(layer)
    if kind == "match":
        return Match(tap)
    if kind == "direction":
        if isinstance(unit, (list, tuple)):
            return Direction(tap, [float(v) for v in unit])
        return Direction(tap, _whole(unit, "direction seed"))
    return (Channel if kind == "channel" else Neuron)(tap, _whole(unit, "channel"))


def _whole(v, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise ConfigError(f"The {what} must be a whole number from 0, not {str(v)[:40]!r}.")
    return v


def parse(text: str, lm=None) -> Objective:
    """An objective from its text (``"mlp(6, 3) + 0.5 * channel('stem', 2)"``); never evaluates code."""
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT:
        raise ConfigError("An objective is a text such as 'mlp(6, 3)' or 'channel(\"stem\", 2) + head(4, 1)'.")
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except SyntaxError:
        raise ConfigError(f"{text[:60]!r} is not an objective; write e.g. 'mlp(6, 3) + 0.5 * head(6, 1)'.") from None
    return _build(tree, text, lm)


def _literal(node, text):
    try:
        return ast.literal_eval(node)
    except ValueError:
        raise ConfigError(f"In {text[:60]!r}, an objective's arguments are numbers, names in quotes or lists.") from None


def _build(node, text: str, lm) -> Objective:
    if isinstance(node, ast.BinOp) and type(node.op) in (ast.Add, ast.Sub, ast.Mult):
        a, b = (_operand(n, text, lm) for n in (node.left, node.right))
        if not isinstance(a, Objective) and not isinstance(b, Objective):
            raise ConfigError(f"{text[:60]!r} combines numbers only; name at least one unit.")
        return {ast.Add: lambda: a + b, ast.Sub: lambda: a - b, ast.Mult: lambda: a * b}[type(node.op)]()
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_build(node.operand, text, lm)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
        args = [_literal(a, text) for a in node.args]
        if not 1 <= len(args) <= 2:
            raise ConfigError(f"{node.func.id}(...) takes a layer or block and a unit, as in 'mlp(6, 3)'.")
        return term(node.func.id, *args, lm=lm)
    raise ConfigError(f"{text[:60]!r} is not an objective; write e.g. 'mlp(6, 3) + 0.5 * head(6, 1)'.")


def _operand(node, text, lm):
    try:
        v = ast.literal_eval(node)  # a number, signed or not
    except (ValueError, TypeError, SyntaxError):
        v = None
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return _lift(float(v)).value
    return _build(node, text, lm)
