"""``python -m vitrep layernorm``: why layer norm is not invertible, with the write-up's vectors or yours."""

from __future__ import annotations


def add(sub) -> None:
    ln = sub.add_parser("layernorm", help="show why layer norm is not invertible (the paper's vectors or yours)")
    ln.add_argument("vectors", nargs="*", help="vectors like '0,2,4' (default: the paper's three)")


def command(a) -> int:
    from ..experiments.layernorm import make_layernorm_config, run

    print(run(make_layernorm_config(a.vectors)).text())
    return 0
