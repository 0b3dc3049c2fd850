"""Prefix caching in Iterative Pruning: cached vs naive greedy sweep, side by side.

One greedy sweep (criterion: calibration mean DM) of the embedded SmolLM2-135M (30 layers)
on ARC-Easy in letter format, 64 calibration + 200 evaluation items, run twice on the same
model object:

* ``cached``: each candidate starts from the remembered residual stream entering the
  removed layer (``PrefixRunner`` with a cache);
* ``naive``: each candidate runs the whole pruned network from the embeddings.

Both runs must choose the same layers; their scores must agree to float tolerance.

Usage:
    python benchmarks/bench_pruning.py [--quick] [--n-remove N] [--dtype fp32|bf16]

``--quick`` (CI): 8 calibration + 16 evaluation items, 2 removal steps.
On a 2-core CPU the full sweep takes hours (naive ~2.5x the cached one); use ``--n-remove``
to time the first, most expensive, steps at full size.
Writes ``benchmarks/results/bench_pruning.json`` (``bench_pruning_quick.json`` with --quick,
unless --out). Goal: naive / cached wall time >= 1.8.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import torch  # noqa: E402

import layercollapse  # noqa: E402
from layercollapse.models import load_model  # noqa: E402
from layercollapse.pruning import prune  # noqa: E402
from layercollapse.scoring import DEFAULT_TOKEN_BUDGET, score  # noqa: E402
from layercollapse.tasks import load_task, split_calibration  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
GOAL = 1.8  # naive / cached wall-time ratio to reach


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="8 + 16 items, 2 steps (CI)")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--n-calibration", type=int, default=None, help="default 64 (quick: 8)")
    parser.add_argument("--n-evaluation", type=int, default=None, help="default 200 (quick: 16)")
    parser.add_argument("--n-remove", type=int, default=None, help="greedy steps (default: full sweep; quick: 2)")
    parser.add_argument("--dtype", default=None, help="bf16 or fp32 (default: the library's choice)")
    parser.add_argument("--token-budget", type=int, default=DEFAULT_TOKEN_BUDGET,
                        help="rows x padded length per batch (smaller: less padding, same results)")
    parser.add_argument("--out", default=None, help="output JSON path")
    return parser.parse_args()


def timed_sweep(model, tokenizer, calibration, evaluation, n_remove: int | None, cache: bool, token_budget: int):
    """(trace, wall seconds, CPU seconds of this process) of one greedy sweep.

    CPU time is reported beside wall time because a shared machine's load inflates wall time unevenly.
    """
    wall, cpu = time.perf_counter(), time.process_time()
    trace = prune(model, tokenizer, evaluation, "iterative", calibration=calibration, criterion="dm",
                  n_remove=n_remove, task="arc_easy", cache=cache, token_budget=token_budget,
                  progress="cached" if cache else "naive")
    return trace, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    args = parse_arguments()
    n_calibration = args.n_calibration or (8 if args.quick else 64)
    n_evaluation = args.n_evaluation or (16 if args.quick else 200)
    n_remove = args.n_remove if args.n_remove is not None else (2 if args.quick else None)
    model, tokenizer = load_model(args.model, dtype=args.dtype)
    calibration, evaluation = split_calibration(load_task("arc_easy").items, n_calibration, n_evaluation, seed=0)
    score(model, tokenizer, evaluation[:8], "letter", task="arc_easy", progress=False)  # warm-up

    cached, cached_s, cached_cpu = timed_sweep(model, tokenizer, calibration, evaluation, n_remove, True,
                                               args.token_budget)
    print(f"cached: {cached_s:8.1f} s wall {cached_cpu:8.1f} s CPU  removal order {cached.removal_order()}",
          flush=True)
    naive, naive_s, naive_cpu = timed_sweep(model, tokenizer, calibration, evaluation, n_remove, False,
                                            args.token_budget)
    print(f"naive:  {naive_s:8.1f} s wall {naive_cpu:8.1f} s CPU  removal order {naive.removal_order()}", flush=True)
    speedup = naive_s / cached_s
    same = cached.removed == naive.removed
    equal = cached.scores == naive.scores  # -inf pads compare equal
    difference = float(np.max(np.where(equal, 0.0, np.abs(cached.scores - naive.scores)))) if same else None
    print(f"speedup (naive / cached): {speedup:.2f}x wall, {naive_cpu / cached_cpu:.2f}x CPU (goal >= {GOAL}x); "
          f"same removals: {same}; max |score difference|: {difference}")

    parameter = next(model.parameters())
    result = {
        "benchmark": "bench_pruning",
        "model": args.model,
        "dtype": str(parameter.dtype).removeprefix("torch."),
        "device": str(parameter.device),
        "task": "arc_easy",
        "format": "letter",
        "criterion": "dm",
        "n_calibration": n_calibration,
        "n_evaluation": n_evaluation,
        "n_layers": cached.n_layers,
        "n_steps": cached.n_steps,
        "quick": args.quick,
        "full_sweep": cached.n_steps == cached.n_layers,
        "cached_s": round(cached_s, 2),
        "naive_s": round(naive_s, 2),
        "cached_cpu_s": round(cached_cpu, 2),
        "naive_cpu_s": round(naive_cpu, 2),
        "speedup": round(speedup, 3),
        "speedup_cpu": round(naive_cpu / cached_cpu, 3),
        "token_budget": args.token_budget,
        "goal": GOAL,
        "meets_goal": speedup >= GOAL,
        "same_removals": same,
        "max_abs_score_difference": difference,
        "removal_order": cached.removal_order(),
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(),
        "torch": torch.__version__,
        "layercollapse": layercollapse.__version__,
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    out = Path(args.out) if args.out else RESULTS / ("bench_pruning_quick.json" if args.quick else "bench_pruning.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
