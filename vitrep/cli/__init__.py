"""The command line: ``python -m vitrep COMMAND``.

Every user error ends with one sentence on stderr and exit status 2; no
traceback.  Long runs show a progress bar on stderr; results go to ``--out``.
Each command is a module here that builds its experiment's config from the
flags (:mod:`vitrep.experiments`), runs it and prints its report;
:mod:`.common` holds what they share.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional

from ..errors import VitrepError
from . import condition, ensemble, filters, gallery, generate, layernorm, models, preset, reconstruct, sweep, units
from .common import check_out, config_from_args

__all__ = ["COMMANDS", "build_parser", "config_from_args", "main"]

# in the order ``--help`` lists them
COMMANDS = {m.__name__.rsplit(".", 1)[1]: m for m in (models, reconstruct, sweep, preset, generate, filters,
                                                       layernorm, condition, ensemble, units, gallery)}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m vitrep", description="See what vision models keep of their input.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for command in COMMANDS.values():
        command.add(sub)
    return p


def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        check_out(getattr(args, "out", None))
        return COMMANDS[args.command].command(args)
    except VitrepError as exc:
        print(f"vitrep: {exc.say('cli')}", file=sys.stderr)
        return 2
    except OSError as exc:  # a folder that cannot be written, a disk that is full: one sentence, no traceback
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"vitrep: {exc.strerror or exc}{where}.", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("vitrep: stopped.", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
