"""``python -m layercollapse reproduce``: compute every result of a profile ahead of rendering.

Runs :attr:`Experiments.plan` in order on one machine; each finished experiment is in
the results store, so an interrupted run resumes where it stopped (pruning traces even
mid-trace, from their per-step checkpoints). ``--list`` shows what is stored and what
is missing without computing anything.
"""

from __future__ import annotations

import argparse
import time

from .cli import command
from .distributed import add_distributed_arguments, maybe_run_distributed
from .provenance import split_results
from .store import list_results


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default=None, help="profile name (default: the active profile)")
    parser.add_argument("--only", default=None, help="run only the plan steps whose name contains this text")
    parser.add_argument("--list", action="store_true", help="list the plan and what is stored; compute nothing")
    parser.add_argument("--remove-stale", action="store_true",
                        help="delete stored results computed at another compute version (never served), then stop")
    add_distributed_arguments(parser)


@command("reproduce", _add_arguments)
def reproduce(args: argparse.Namespace) -> int:
    """Compute (or check) every stored result a profile's chapters read."""
    from .experiments import Experiments

    if (code := maybe_run_distributed(args)) is not None:
        return code
    experiments = Experiments(args.profile, compute=not args.list)
    print(f"profile '{experiments.profile.name}', store {experiments.store.root}")
    if args.remove_stale:
        return remove_stale(experiments.store)
    names = [name for name, _ in experiments.plan]
    if args.only and not any(args.only in name for name in names):
        print(f"error: --only {args.only!r} matches no experiment of profile '{experiments.profile.name}'; "
              f"its experiments are: {'; '.join(names)}")
        return 2
    missing = 0
    for name, stored, seconds in run_plan_steps(experiments, args.only, check_only=args.list):
        if not stored:
            missing += 1
            print(f"  missing  {name}")
            continue
        print(f"  {'stored ' if args.list else 'done   '}  {name}  ({seconds:.1f} s)", flush=True)
    if args.list:
        print(f"{missing} experiment(s) missing" if missing else "every experiment is stored")
        _, stale = split_results(list_results(experiments.store))
        if len(stale):
            print(f"{len(stale)} stale result(s) (computed at another compute version; never served): "
                  "remove them with --remove-stale")
    return 1 if missing else 0


def run_plan_steps(experiments, only: str | None = None, check_only: bool = False):
    """Run the plan's steps (those whose name contains ``only``); yield (name, stored, seconds) for each.

    ``check_only``: ``experiments`` must not compute; a step whose result is missing yields stored=False
    (otherwise a missing result is computed, and an error propagates).
    """
    for name, run in experiments.plan:
        if only and only not in name:
            continue
        start = time.perf_counter()
        try:
            run()
        except LookupError:
            if not check_only:
                raise
            yield name, False, time.perf_counter() - start
            continue
        yield name, True, time.perf_counter() - start


def missing_experiments(profile) -> list[str]:
    """Names of the plan steps of ``profile`` (a name or a loaded Profile) whose results are not all stored
    (computes nothing)."""
    from .experiments import Experiments

    experiments = Experiments(profile, compute=False, progress=False)
    return [name for name, stored, _ in run_plan_steps(experiments, check_only=True) if not stored]


def remove_stale(store) -> int:
    """Delete every stored result that the current code would not serve; print what went."""
    _, stale = split_results(list_results(store))
    for kind, key in zip(stale["kind"], stale["key"]):
        store.remove(kind, key)
        print(f"  removed  {kind}/{key}")
    print(f"{len(stale)} stale result(s) removed")
    return 0


def _add_render_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default="default", help="profile name (default: default)")
    parser.add_argument("--timeout", type=int, default=None, help="seconds per chapter cell")
    parser.add_argument("--compute", action="store_true",
                        help="compute results that are not stored (default: refuse to render when any is missing)")


@command("render", _add_render_arguments)
def render(args: argparse.Namespace) -> int:
    """Render the site: ``quarto render`` where Quarto is installed, else execute every chapter."""
    from .chapters import render_all
    from .profiles import load_profile

    profile = load_profile(args.profile)  # an unknown or invalid profile fails here, in one line, before any kernel
    if not args.compute:
        missing = missing_experiments(profile)
        if missing:
            print(f"error: {len(missing)} experiment(s) of profile '{args.profile}' are not stored "
                  f"(first: {missing[0]}); rendering reads stored results only. Compute them with "
                  f"`python -m layercollapse reproduce --profile {args.profile}` (resumable), or render with --compute")
            return 1
    for path in render_all(args.profile, args.timeout, compute=args.compute):
        print(f"wrote {path}")
    return 0
