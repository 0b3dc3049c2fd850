"""How long a cold run of the default profile takes, assembled from its parts, each with how it was measured.

    python benchmarks/cold_total.py

A cold run is too long to time in one sitting on 2 cores, so it was timed in parts (``benchmarks/cold_profile.py
--steps``, each step alone on the machine); the dose-response of phase-targeted pruning (k up to the whole Decisive
Phase, ARC-Easy and ARC-Challenge) was added after those measurements and is costed from its decoder-layer passes
(counted from the stored traces) at the rate of those of its traces that ran alone. Writes
``benchmarks/results/cold_total_default.json``, which the README and the Methods page quote
(``tests/project/test_readme.py`` checks the README against it).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from layercollapse.paths import project_root
from layercollapse.storage.store import Store

RESULTS = Path(__file__).resolve().parent / "results"
MACHINE = "2 CPU cores, AMD EPYC with AVX512-BF16, 2 threads, torch 2.13.0+cpu"

#: The dose-response traces run alone on the machine (2026-12-06, 2 threads): (task, first layer of the phase,
#: seed). Their recorded wall times over their decoder-layer passes give the rate the other traces are costed at.
TIMED_ALONE = [("arc_challenge", 0, 8), ("arc_challenge", 0, 9)] + [("arc_challenge", 22, seed) for seed in range(10)]

#: What a trace of the dose-response adds: its passes at k > K_STORED on ARC-Easy (k <= 2 was stored before and is
#: continued, not recomputed) and all its passes on ARC-Challenge.
K_STORED = {"arc_easy": 2, "arc_challenge": 0}
#: The model whose dose-response this part costs (the phase settings of the main model).
MAIN_MODEL = "qwen2.5-coder-1.5b"


def layer_passes(kept: np.ndarray) -> np.ndarray:
    """Decoder-layer passes over the evaluation items per step of a trace (prefix reuse: a pruned network runs from
    its first removed layer on). kept: bool [steps + 1, n_layers]; returns int [steps] for steps 1.."""
    first_removed = np.argmin(kept[1:], axis=1)
    return np.array([int(row[first:].sum()) for row, first in zip(kept[1:], first_removed)])


def main_model_phase_traces(store: Store) -> list[tuple[dict, np.ndarray]]:
    """(sidecar, decoder-layer passes per step) of every phase-targeted trace of the main model, read once."""
    found = []
    for sidecar in store.sidecars("trace"):
        spec = sidecar["spec"]
        if spec.get("schedule") == "random_in_range" and spec["model"] == MAIN_MODEL:
            kept = store.load("trace", spec, compute_version=sidecar["compute_version"]).arrays["kept"]
            found.append((sidecar, layer_passes(kept)))
    return found


def dose_response(traces: list[tuple[dict, np.ndarray]]) -> dict:
    """Passes and recorded wall times of the phase-targeted traces (:func:`main_model_phase_traces`) on the phase
    tasks, the rate of those run alone, and the hours."""
    rows = []
    for sidecar, passes in traces:
        spec = sidecar["spec"]
        if spec["n_remove"] < 6 or spec["task"] not in K_STORED:
            continue  # the settings' dose-responses are costed with the settings (settings_part)
        rows.append({"task": spec["task"], "phase": "Silent" if spec["layers"][0] == 0 else "Decisive",
                     "first": spec["layers"][0], "seed": spec["seed"], "passes": int(passes.sum()),
                     "new_passes": int(passes[K_STORED[spec["task"]]:].sum()),
                     "wall_s": sidecar["provenance"]["wall_s"]})
    alone = [r for r in rows if (r["task"], r["first"], r["seed"]) in TIMED_ALONE]
    rate = sum(r["wall_s"] for r in alone) / sum(r["passes"] for r in alone)
    parts = {}
    for r in rows:
        name = f"{r['task']} {r['phase']}"
        parts[name] = parts.get(name, 0) + r["new_passes"]
    return {"passes": parts, "seconds_per_layer_pass": round(rate, 2),
            "timed_alone": {"traces": len(alone), "passes": sum(r["passes"] for r in alone),
                            "seconds": round(sum(r["wall_s"] for r in alone), 1)},
            "recorded_wall_hours": round(sum(r["wall_s"] for r in rows if r["new_passes"]) / 3600, 2),
            "hours": round(sum(parts.values()) * rate / 3600, 2)}


def main_model_rates(traces: list[tuple[dict, np.ndarray]]) -> dict:
    """Milliseconds per decoder-layer pass per item of the main model's phase-targeted traces
    (:func:`main_model_phase_traces`), per CPU and task: the settings were computed on another machine than the rest,
    and these rates compare the two on the same model."""
    totals: dict = {}
    for sidecar, passes in traces:
        spec = sidecar["spec"]
        cpu = (sidecar["provenance"].get("environment") or {}).get("cpu", "unknown CPU")
        total = totals.setdefault(f"{cpu}, {spec['task']}", [0, 0.0])
        total[0] += int(passes.sum()) * len(spec["evaluation_ids"])
        total[1] += sidecar["provenance"]["wall_s"]
    return {where: round(1000 * seconds / pass_items, 1) for where, (pass_items, seconds) in sorted(totals.items())}


#: Parts timed alone, step by step (benchmarks/cold_profile.py, 2026-12-05).
TIMED = [
    ("main model: schedules and controls (random orders, Iterative Pruning, margins, Decisive-first, BI, angular, "
     "reverse, similarity, fine-tuning, LM loss, noise), without phase-targeted pruning", 3.80 - 0.48),
    ("main model: phase-targeted pruning k <= 2 on ARC-Easy (20 traces)", 0.48),
    ("SmolLM2-135M: its schedules and controls", 0.46),
    ("two SmolLM2 readouts", 0.03),
]

#: Parts not timed alone: the other ten readouts and the tuned lens, estimated from the readouts that were timed.
ESTIMATED = [("ten other readouts and the tuned lens (estimated from the timed readouts)", 0.5)]


def settings_part() -> dict | None:
    """The settings of the verdict matrix (their candidate readouts and pruning studies), as
    ``benchmarks/setting_costs.py`` summed them from the wall times their results recorded; None before it ran."""
    path = RESULTS / "setting_costs_default.json"
    if not path.is_file():
        return None
    costs = json.loads(path.read_text())
    return {"part": f"settings of the verdict matrix: {len(costs['seconds'])} candidate readouts and studies",
            "hours": costs["total_hours"],
            "how": f"the wall times their results recorded (setting_costs.py; {'; '.join(costs['machines'])})"}


def cold_total(store: Store) -> dict:
    """Every part in hours, how it was measured, and the total."""
    traces = main_model_phase_traces(store)
    dose = dose_response(traces)
    settings = settings_part()
    parts = ([{"part": what, "hours": round(hours, 2), "how": "timed alone (cold_profile.py, 2026-12-05)"}
              for what, hours in TIMED]
             + [{"part": what, "hours": hours, "how": "estimate"} for what, hours in ESTIMATED]
             + [{"part": "dose-response: phase-targeted pruning to k = 6 on ARC-Easy and ARC-Challenge (40 traces)",
                 "hours": dose["hours"],
                 "how": f"{sum(dose['passes'].values())} decoder-layer passes x {dose['seconds_per_layer_pass']} s, "
                        f"the rate of {dose['timed_alone']['traces']} of its traces run alone (2026-12-06)"}]
             + ([settings] if settings else []))
    return {"profile": "default", "machine": MACHINE, "parts": parts, "dose_response": dose,
            "main_model_ms_per_pass_item": main_model_rates(traces),
            "new_hours": settings["hours"] if settings else dose["hours"],
            "measured_hours": round(sum(p["hours"] for p in parts if p["how"] != "estimate"), 2),
            "total_hours": round(sum(p["hours"] for p in parts), 1)}


def main() -> None:
    report = cold_total(Store(project_root() / "data" / "store"))
    path = RESULTS / "cold_total_default.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"cold run of the default profile: about {report['total_hours']} h "
          f"({report['new_hours']} h of it the settings of the verdict matrix) -> {path}")


if __name__ == "__main__":
    main()
