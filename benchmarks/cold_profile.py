"""How long a cold run of a profile takes on this machine, and whether it reproduces the committed results.

    python benchmarks/cold_profile.py [--profile default] [--store DIR] [--steps NAME ...] [--summary-only]

Runs every step of the profile's plan, in ``reproduce``'s order, into ``--store`` (a folder of its own,
empty at first), timing each step that computes something; run it alone on the machine. Interrupted, it
resumes: the step times so far are kept in ``DIR/steps.jsonl`` and the stored results are not recomputed.
Then it compares every result computed there with the committed result of the same key
(``verify.compare_results`` at tolerance 0: bit-identical or not) and writes
``benchmarks/results/cold_profile_<profile>.json``: the step times and their sum, the committed results
not computed yet (with the wall times their sidecars record, computed under varying load: a guide, not
a measurement) and the comparison. ``--summary-only`` computes nothing and writes the summary of the
store as it is.

``--steps`` times some steps only, in the order given (a cold run too long for one sitting, measured in
parts): the store starts as a copy of the committed one without the results those steps compute (the
results a step is the first in the plan to read), so each named step computes exactly its own results.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from layercollapse.paths import project_root
from layercollapse.storage.provenance import environment, split_results
from layercollapse.storage.store import Store, list_results
from layercollapse.study.audit import own_results
from layercollapse.study.experiments import Experiments
from layercollapse.study.verify import compare_results

RESULTS = Path(__file__).resolve().parent / "results"


def run_cold(experiments: Experiments, log: Path, names: list[str] | None = None) -> None:
    """Compute the plan's steps that are not stored, in order (or the steps ``names``, in that order); append
    ``{name, seconds, finished}`` to ``log`` for each."""
    reading = {check.name: check for check in experiments.on_store(experiments.store, compute=False).plan}
    steps = {step.name: step for step in experiments.plan}
    for name in names or list(steps):
        try:
            reading[name].run()  # reads only: a step whose results are all stored (an earlier step may have computed them)
            continue
        except LookupError:
            pass
        start = time.perf_counter()
        steps[name].run()
        seconds = time.perf_counter() - start
        print(f"  done     {name}  ({seconds:.1f} s)", flush=True)
        with log.open("a") as out:
            out.write(json.dumps({"name": name, "seconds": round(seconds, 1),
                                  "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}) + "\n")


def seed_cold_store(experiments: Experiments, cold: Path, names: list[str]) -> None:
    """Make ``cold`` a copy of the profile's store without the results the steps ``names`` compute."""
    unknown = sorted(set(names) - {step.name for step in experiments.plan})
    if unknown:
        raise SystemExit(f"error: --steps {unknown[0]!r} is not a step of profile '{experiments.profile.name}'; "
                         "`python -m layercollapse reproduce --profile <name> --list` lists them")
    owned = own_results(experiments)
    shutil.copytree(experiments.store.root, cold)
    store = Store(cold)
    for name in names:
        for kind, key in owned[name]:
            store.remove(kind, key)


def _sidecars(store: Store) -> dict[tuple[str, str], dict]:
    """(kind, key) -> sidecar of every result in ``store``."""
    return {(kind, sidecar["key"]): sidecar for kind in store.kinds() for sidecar in store.sidecars(kind)}


def summary(profile: str, cold: Store, committed: Store, log: Path) -> dict:
    """Step times, the committed results not yet computed in ``cold``, and the comparison of those that are."""
    steps = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    current, _ = split_results(list_results(committed))
    theirs, mine = _sidecars(committed), _sidecars(cold)
    comparisons, pending, copied = [], [], 0
    for kind, key in zip(current["kind"], current["key"]):
        stored, fresh = theirs[kind, key], mine.get((kind, key))
        if fresh is None:
            pending.append({"kind": kind, "key": key,
                            "recorded_wall_s": (stored.get("provenance") or {}).get("wall_s")})
        elif fresh.get("created") == stored.get("created"):
            copied += 1  # a copy of the committed result (``--steps``), not computed here
        else:
            comparisons.append(compare_results(committed.load_key(kind, key, damaged="raise"),
                                               cold.load_key(kind, key, damaged="raise"), tolerance=0.0))
    known = set(zip(current["kind"], current["key"]))
    not_committed = [f"{kind}/{key}" for kind, key in mine if (kind, key) not in known]
    recorded = [row["recorded_wall_s"] for row in pending if row["recorded_wall_s"] is not None]
    return {
        "profile": profile, "store": str(cold.root), "environment": environment("cpu"),
        "steps": steps, "measured_hours": round(sum(s["seconds"] for s in steps) / 3600, 3),
        "copied_from_committed": copied,
        "pending": {"results": len(pending), "with_recorded_wall": len(recorded),
                    "recorded_hours": round(sum(recorded) / 3600, 3), "rows": pending},
        "comparison": {"results": len(comparisons), "identical": sum(c.agrees() for c in comparisons),
                       "values": sum(c.n_values for c in comparisons),
                       "predictions": sum(c.n_predictions for c in comparisons),
                       "differ": [c.line().strip() for c in comparisons if not c.agrees()],
                       "not_in_committed_store": not_committed},
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="default")
    parser.add_argument("--store", type=Path, default=None,
                        help="the cold store (default: data/cache/cold-<profile>); created when absent")
    parser.add_argument("--steps", nargs="+", default=None, metavar="NAME",
                        help="time these plan steps only, in this order, from a copy of the committed store")
    parser.add_argument("--summary-only", action="store_true", help="compute nothing; summarize the store as it is")
    args = parser.parse_args()
    experiments = Experiments(args.profile, compute=False)
    root = args.store or project_root() / "data" / "cache" / f"cold-{experiments.profile.name}"
    if root.resolve() == experiments.store.root.resolve():
        raise SystemExit(f"error: --store {root} is the profile's own store; give an empty folder of its own")
    if args.steps and not root.exists():
        seed_cold_store(experiments, root, args.steps)
    root.mkdir(parents=True, exist_ok=True)
    cold, log = Store(root), root / "steps.jsonl"
    print(f"profile '{experiments.profile.name}', cold store {root}", flush=True)
    if not args.summary_only:
        run_cold(experiments.on_store(cold, compute=True), log, args.steps)
    report = summary(experiments.profile.name, cold, experiments.store, log)
    out = RESULTS / f"cold_profile_{experiments.profile.name}.json"
    out.write_text(json.dumps(report, indent=1) + "\n")
    check = report["comparison"]
    print(f"measured {report['measured_hours']:.2f} h over {len(report['steps'])} steps; "
          f"{report['pending']['results']} committed result(s) not computed yet; "
          f"{check['identical']} of {check['results']} computed results identical to the committed ones; "
          f"wrote {out}")


if __name__ == "__main__":
    main()
