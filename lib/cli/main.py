"""Command line: ``python -m layercollapse <command>``, one entry point and its explicit list of commands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from layercollapse.cli import evaluate, prune, reproduce

#: Every command: name -> (adds its arguments to a parser, runs it and returns the exit code).
COMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {
    "evaluate": (evaluate.add_evaluate_arguments, evaluate.evaluate),
    "diagnose": (evaluate.add_diagnose_arguments, evaluate.diagnose),
    "prune": (prune.add_prune_arguments, prune.prune_command),
    "reproduce": (reproduce.add_reproduce_arguments, reproduce.reproduce),
    "render": (reproduce.add_render_arguments, reproduce.render),
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every command of :data:`COMMANDS`."""
    parser = argparse.ArgumentParser(prog="layercollapse", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name, (add_arguments, run) in COMMANDS.items():
        sub = subparsers.add_parser(name, help=(run.__doc__ or "").splitlines()[0])
        add_arguments(sub)
        sub.set_defaults(run=run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m layercollapse`` and the ``layercollapse`` script."""
    from layercollapse.cli.errors import friendly_errors

    args = build_parser().parse_args(argv)
    with friendly_errors():
        return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
