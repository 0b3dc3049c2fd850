"""What recording the readout along a pruning trace costs: the same trace with and without ``readout=True``.

    python benchmarks/readout_along_traces.py [--repeats 3] [--models smollm2-135m]

Runs each case side by side (with, without, alternating, ``--repeats`` times) on the embedded models
and reports the median wall-time ratio (with / without); the goal of the readout-along-traces design
is <= 1.15x. Cases (the default profile's formats): Qwen2.5-Coder-1.5B letter ARC-Easy (the phase-
targeted random_in_range traces and a few Iterative Pruning steps) and SmolLM2-135M cloze ARC-Easy
(reverse, where the evaluation pass is the whole cost, and Iterative Pruning, where calibration
dominates). Cloze reads every continuation token, so its readout unembeds many more positions per
layer than letter's one. Writes ``benchmarks/results/readout_along_traces.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from layercollapse.data.tasks import load_task, split_calibration
from layercollapse.model.loading import load_model
from layercollapse.pruning.engine import prune

RESULTS = Path(__file__).resolve().parent / "results" / "readout_along_traces.json"

#: (model, format, schedule, n_evaluation, n_calibration, prune keyword arguments)
CASES = (
    ("qwen2.5-coder-1.5b", "letter", "random_in_range", 48, 0, {"layers": list(range(10)), "n_remove": 2}),
    ("qwen2.5-coder-1.5b", "letter", "iterative", 48, 8, {"n_remove": 2}),
    ("smollm2-135m", "cloze", "reverse", 48, 0, {"n_remove": 10}),
    ("smollm2-135m", "cloze", "iterative", 48, 16, {"n_remove": 3}),
)


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", nargs="*", default=None, help="run only the cases of these models")
    args = parser.parse_args()
    items = load_task("arc_easy", "test").items
    rows, models = [], {}
    for name, format, schedule, n_eval, n_cal, kwargs in CASES:
        if args.models and name not in args.models:
            continue
        if name not in models:
            models.clear()
            models[name] = load_model(name, dtype="bf16")
        model, tokenizer = models[name]
        calibration, evaluation = split_calibration(items, n_cal or 1, n_eval, seed=0)
        run = dict(calibration=calibration if n_cal else (), format=format, task="arc_easy", progress=False, **kwargs)
        prune(model, tokenizer, evaluation[:4], schedule, **run)  # warm-up
        times = {False: [], True: []}
        for _ in range(args.repeats):
            for readout in (False, True):
                times[readout].append(timed(lambda: prune(model, tokenizer, evaluation, schedule, readout=readout,
                                                          **run)))
        ratio = statistics.median(w / wo for w, wo in zip(times[True], times[False]))
        rows.append({"model": name, "format": format, "schedule": schedule, "n_evaluation": n_eval,
                     "n_calibration": n_cal, **{k: v for k, v in kwargs.items() if k != "layers"},
                     "without_s": times[False], "with_s": times[True], "median_ratio": round(ratio, 3)})
        print(f"{name:20s} {format:6s} {schedule:16s} with/without readout = {ratio:.3f}x "
              f"(median of {args.repeats}; without: {statistics.median(times[False]):.1f} s)")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({"threads": torch.get_num_threads(), "cases": rows}, indent=1) + "\n")
    print(f"written {RESULTS}")


if __name__ == "__main__":
    main()
