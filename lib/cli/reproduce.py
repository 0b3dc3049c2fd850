"""``python -m layercollapse reproduce``: compute every result of a profile ahead of rendering.

Runs :attr:`Experiments.plan` in order on one machine; each finished experiment is in
the results store, so an interrupted run resumes where it stopped (pruning traces even
mid-trace, from their per-step checkpoints). ``--list`` shows what is stored and what
is missing without computing anything.
"""

from __future__ import annotations

import argparse
import math

from layercollapse.storage.provenance import COMPUTE_VERSIONS, split_results
from layercollapse.storage.store import CorruptResultError, list_results
from layercollapse.study.distributed import (
    add_distributed_arguments,
    maybe_run_distributed,
)
from layercollapse.study.plan import (
    missing_experiments,
    run_plan_steps,
    unread_results,
    unused_results,
)
from layercollapse.cli.arguments import non_negative_int, positive_float
from layercollapse.study.verify import DEFAULT_TOLERANCE, verify_kind


def add_reproduce_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default=None, help="profile name (default: the active profile)")
    parser.add_argument("--only", default=None, help="run only the plan steps whose name contains this text")
    parser.add_argument("--list", action="store_true", help="list the plan and what is stored; compute nothing")
    parser.add_argument("--repair", action="store_true",
                        help="recompute stored results whose files are damaged (default: stop at the first, naming it)")
    parser.add_argument("--verify", metavar="KIND", choices=sorted(COMPUTE_VERSIONS), default=None,
                        help="recompute the stored results of this kind (in a temporary copy of the store) and "
                             f"compare: max |Δ| and prediction flips; one of {', '.join(sorted(COMPUTE_VERSIONS))}")
    parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                        help=f"--verify, --audit: largest |Δ| a value may move (default {DEFAULT_TOLERANCE:g})")
    parser.add_argument("--audit", action="store_true",
                        help="recompute a random, seeded sample of the stored results of every kind that fits "
                             "--minutes (in a temporary copy of the store), decide again every claim that read them, "
                             "and say whether the conclusions hold on this machine")
    parser.add_argument("--minutes", type=positive_float, default=20.0,
                        help="--audit: the time budget of the recomputation (default 20), against each result's "
                             "recorded wall time (a documented rate where none is recorded); the sample never "
                             "exceeds it, and the claims decided again take extra")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="--audit: seed of the sample (default 0)")
    parser.add_argument("--remove-stale", action="store_true",
                        help="delete stored results computed at another compute version (never served), then stop")
    parser.add_argument("--remove-unused", action="store_true",
                        help="delete stored results that no experiment of the profile reads (left behind when a spec "
                             "changed; only when every experiment is stored), then stop")
    add_distributed_arguments(parser)


def reproduce(args: argparse.Namespace) -> int:
    """Compute (or check) every stored result a profile's chapters read."""
    from layercollapse.study.experiments import Experiments

    if (code := maybe_run_distributed(args)) is not None:
        return code
    experiments = Experiments(args.profile, compute=not args.list, repair=args.repair)
    print(f"profile '{experiments.profile.name}', store {experiments.store.root}")
    if args.remove_stale:
        return remove_stale(experiments.store)
    if args.remove_unused:
        return remove_unused(experiments)
    names = [step.name for step in experiments.plan]
    if args.only and not any(args.only in name for name in names):
        print(f"error: --only {args.only!r} matches no experiment of profile '{experiments.profile.name}'; "
              f"its experiments are: {'; '.join(names)}")
        return 2
    if args.verify:
        return verify(experiments, args.verify, args.only, args.tolerance)
    if args.audit:
        return audit_command(experiments, args.minutes, args.seed, args.tolerance)
    missing = damaged = 0
    for name, problem, seconds in run_plan_steps(experiments, args.only, check_only=args.list):
        if isinstance(problem, CorruptResultError):
            damaged += 1
            print(f"  damaged  {name}: {problem}")
        elif problem is not None:
            missing += 1
            print(f"  missing  {name}")
        else:
            print(f"  {'stored ' if args.list else 'done   '}  {name}  ({seconds:.1f} s)", flush=True)
    if args.list:
        if missing:
            print(f"{missing} experiment(s) missing")
        elif not damaged:
            print("every experiment is stored")
        if damaged:
            print(f"{damaged} experiment(s) with damaged files: restore them, or recompute them with --repair")
        _, stale = split_results(list_results(experiments.store))
        if len(stale):
            print(f"{len(stale)} stale result(s) (computed at another compute version; never served): "
                  "remove them with --remove-stale")
        if not missing and not damaged and not args.only and len(unused := unread_results(experiments.store)):
            print(f"{len(unused)} stored result(s) that no experiment of this profile reads: remove them with "
                  "--remove-unused")
    return 1 if missing or damaged else 0


def verify(experiments, kind: str, only: str | None, tolerance: float) -> int:
    """Recompute the stored ``kind`` results of the plan steps matching ``only``; print the comparison."""
    print(f"recomputing the '{kind}' results{f' of the steps matching {only!r}' if only else ''} in a temporary "
          f"copy of the store; tolerance |Δ| <= {tolerance:g}, no prediction may flip", flush=True)
    comparisons = verify_kind(experiments, kind, only, tolerance)
    for comparison in comparisons:
        print(comparison.line())
    if not comparisons:
        print(f"error: no stored '{kind}' result was recomputed: no plan step{' matching ' + repr(only) if only else ''} "
              f"reads one (see --list)")
        return 2
    differ = sum(not c.agrees() for c in comparisons)
    print(f"{len(comparisons) - differ} of {len(comparisons)} result(s) reproduce within {tolerance:g}"
          + (f"; {differ} differ" if differ else ""))
    return 1 if differ else 0


def audit_command(experiments, minutes: float, seed: int, tolerance: float) -> int:
    """``reproduce --audit``: recompute a sample of the stored results and decide again the claims that read them."""
    from layercollapse.claims.verdicts import load_verdict_records
    from layercollapse.site.chapters import CHAPTER_SECONDS
    from layercollapse.site.ledger import rejudge, verdict_chapter
    from layercollapse.study.audit import NothingFits, audit

    name = experiments.profile.name
    print(f"auditing profile '{name}': a sample of its stored results that fits {minutes:g} minutes (seed {seed}), "
          f"recomputed in a temporary copy of the store; tolerance |Δ| <= {tolerance:g}", flush=True)
    try:
        report = audit(experiments, minutes, seed, lambda keys, store: rejudge(keys, store, name),
                       load_verdict_records(name), tolerance, say=lambda line: print(line, flush=True),
                       chapter_of=verdict_chapter, chapter_seconds=CHAPTER_SECONDS)
    except NothingFits as nothing:
        print(f"error: --minutes {minutes:g} fits no stored result: {nothing}; pass --minutes "
              f"{math.ceil(nothing.seconds / 60)} or more")
        return 2
    for line in report.lines():
        print(line)
    return report.exit_code


def remove_unused(experiments) -> int:
    """Delete every current result no step of the plan reads (``unused_results``); print what went."""
    try:
        unused = unused_results(experiments)
    except (LookupError, CorruptResultError) as problem:
        print(f"error: not every experiment of profile '{experiments.profile.name}' is stored ({problem}), so what "
              "the plan reads is not known; nothing was removed")
        return 1
    for kind, key in zip(unused["kind"], unused["key"]):
        experiments.store.remove(kind, key)
        print(f"  removed  {kind}/{key}")
    print(f"{len(unused)} unused result(s) removed")
    return 0


def remove_stale(store) -> int:
    """Delete every stored result that the current code would not serve; print what went."""
    _, stale = split_results(list_results(store))
    for kind, key in zip(stale["kind"], stale["key"]):
        store.remove(kind, key)
        print(f"  removed  {kind}/{key}")
    print(f"{len(stale)} stale result(s) removed")
    return 0


def add_render_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default=None, help="profile name (default: the active profile)")
    parser.add_argument("--timeout", type=int, default=None, help="seconds per chapter cell")
    parser.add_argument("--compute", action="store_true",
                        help="compute results that are not stored (default: refuse to render when any is missing)")


def render(args: argparse.Namespace) -> int:
    """Render the site: ``quarto render`` where Quarto is installed, else execute every chapter."""
    from layercollapse.site.chapters import render_all
    from layercollapse.study.profiles import load_profile

    profile = load_profile(args.profile)  # an unknown or invalid profile fails here, in one line, before any kernel
    name = profile.name
    missing = missing_experiments(profile)  # a damaged result stops the render here, in one line, even with --compute
    if missing and not args.compute:
        print(f"error: {len(missing)} experiment(s) of profile '{name}' are not stored "
              f"(first: {missing[0]}); rendering reads stored results only. Compute them with "
              f"`python -m layercollapse reproduce --profile {name}` (resumable), or render with --compute")
        return 1
    for path in render_all(name, args.timeout, compute=args.compute):
        print(f"wrote {path}")
    return 0
