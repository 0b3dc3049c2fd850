"""What the settings of the verdict matrix cost the default profile: every candidate's readout and every studied
setting's pruning study, part by part, from the wall times the results recorded when they were computed.

    python benchmarks/setting_costs.py [--profile default]

Each stored result records its wall time (``provenance.wall_s``). The script reads the sidecars of the results that
the settings added (candidate readouts other than the profile's own, and every result of ``Experiments.study``:
phase-targeted traces, schedules, random orders, LM loss) and sums them per setting and part. Results that were
stored before the settings existed (the main model's schedules and dose-responses, the pruning model's schedules) are
counted as "reused", not as cost. Writes ``benchmarks/results/setting_costs_<profile>.json``, which the README and
the Methods page quote (``tests/project/test_readme.py`` checks the README against it).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

from layercollapse.storage.store import results_read
from layercollapse.study.experiments import Experiments

RESULTS = Path(__file__).resolve().parent / "results"

#: The part of a setting's study a stored result belongs to, by its kind and schedule.
PART_OF_SCHEDULE = {"random_in_range": "dose-response", "random": "random orders"}


def part_of(kind: str, spec: dict) -> str:
    """Which part of a setting's cost a result is: readout, dose-response, schedules, random orders or LM loss."""
    if kind == "readout":
        return "readout"
    if kind == "lm_loss":
        return "LM loss"
    return PART_OF_SCHEDULE.get(spec.get("schedule"), "schedules")


def wall_seconds(sidecar: dict) -> float | None:
    """The wall time a result recorded when it was computed (None: not recorded)."""
    return (sidecar.get("provenance") or {}).get("wall_s")


def machine(sidecar: dict) -> str:
    """Where a result was computed: its CPU model, cores and torch threads, as its provenance recorded them."""
    environment = (sidecar.get("provenance") or {}).get("environment") or {}
    return (f"{environment.get('cpu', 'unknown CPU')}, {environment.get('n_cpus', '?')} cores, "
            f"{environment.get('torch_threads', '?')} threads") if environment else "not recorded"


def setting_of(spec: dict) -> str:
    """The ``Setting.key`` a stored result belongs to, from its own spec (an LM-loss result: its trace's)."""
    spec = spec.get("trace_spec", spec)
    return f"{spec['model']}@{spec['task']}@{spec.get('format', 'letter')}@{len(spec.get('shot_ids') or [])}shot"


def setting_costs(profile: str = "default", before: str = "2026-12-07T03:30") -> dict:
    """Per setting and part, the recorded seconds of the results the settings read (every candidate's readout, every
    studied setting's study) that were computed after ``before`` (the commit that registered the settings); results
    stored before it (the main model's schedules and dose-responses, the pruning model's schedules) are reused, not
    counted. Each result is counted once, for the setting its own spec names."""
    experiments = Experiments(profile, compute=False, progress=False)
    store = experiments.store
    for setting in experiments.profile.candidate_settings:
        experiments.for_setting(setting).readout()
        if setting != experiments.profile.main_setting and experiments.studies(setting):
            experiments.study(setting)
    summary: dict = defaultdict(lambda: defaultdict(float))
    machines, counted, reused, unrecorded = set(), 0, 0, 0
    for result in results_read(store):
        sidecar = json.loads((store.directory(result["kind"]) / f"{result['key']}.json").read_text("utf-8"))
        if result["kind"] not in ("readout", "trace", "lm_loss"):
            continue
        if sidecar.get("created", "") < before:
            reused += 1
            continue
        seconds = wall_seconds(sidecar)
        if seconds is None:
            unrecorded += 1
            continue
        counted += 1
        summary[setting_of(sidecar["spec"])][part_of(result["kind"], sidecar["spec"])] += seconds
        machines.add(machine(sidecar))
    per_setting = {key: {part: round(seconds) for part, seconds in sorted(parts.items())}
                   for key, parts in sorted(summary.items())}
    total = sum(sum(parts.values()) for parts in per_setting.values())
    return {"profile": profile, "machines": sorted(machines), "studied": [s.key for s in experiments.studied_settings()],
            "results": {"counted": counted, "reused": reused, "without_wall_time": unrecorded},
            "seconds": per_setting, "total_hours": round(total / 3600, 2),
            "how": "the wall times the results recorded when they were computed (provenance.wall_s)"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="default")
    args = parser.parse_args()
    costs = setting_costs(args.profile)
    path = RESULTS / f"setting_costs_{args.profile}.json"
    path.write_text(json.dumps(costs, indent=2) + "\n")
    print(json.dumps(costs, indent=2))
    print(f"written {path}")


if __name__ == "__main__":
    main()
