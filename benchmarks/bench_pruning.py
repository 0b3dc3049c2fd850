"""Prefix caching in Iterative Pruning: cached vs naive greedy sweep, side by side.

One greedy sweep (criterion: calibration mean DM) of the embedded SmolLM2-135M (30 layers)
on ARC-Easy in letter format, 64 calibration + 200 evaluation items, run twice on the same
model object:

* ``cached``: each candidate starts from the remembered residual stream entering the
  removed layer (``PrefixRunner`` with a cache);
* ``naive``: the loop one writes without the engine: for every candidate, drop the
  layer (``drop_layers``) and run the whole model as ``model(...)`` does (all positions,
  full-vocabulary logits), then read the option letters at the last position;
* ``no_cache``: the engine with its prefix cache off (every candidate from the
  embeddings, only the last position read out): what prefix caching alone buys.

``cached / naive`` is the headline ratio (the issue's "cached vs naive"); ``no_cache`` shows
how it splits into prefix caching and scoring only what the metric needs. All runs must
choose the same layers; their scores must agree to float tolerance.

Usage:
    python benchmarks/bench_pruning.py [--quick] [--n-remove N] [--dtype fp32|bf16] [--arms cached naive no_cache]

``--quick`` (CI): 8 calibration + 16 evaluation items, 2 removal steps.
On an idle 2-core CPU the full sweep takes about an hour for the three arms; ``--n-remove``
times the first, most expensive, steps only.
Writes ``benchmarks/results/bench_pruning.json`` (``bench_pruning_quick.json`` with --quick,
unless --out). Goal: naive / cached wall time >= 1.8.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import layercollapse  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from layercollapse import metrics  # noqa: E402
from layercollapse.data.tasks import load_task, split_calibration  # noqa: E402
from layercollapse.model.layers import drop_layers  # noqa: E402
from layercollapse.model.loading import load_model  # noqa: E402
from layercollapse.pruning.encoding import encode_items  # noqa: E402
from layercollapse.pruning.engine import prune
from layercollapse.readout.budget import default_token_budget  # noqa: E402
from layercollapse.readout.scoring import model_device, score  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
GOAL = 1.8  # naive / cached wall-time ratio to reach
ARMS = ("cached", "naive", "no_cache")


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="8 + 16 items, 2 steps (CI)")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--n-calibration", type=int, default=None, help="default 64 (quick: 8)")
    parser.add_argument("--n-evaluation", type=int, default=None, help="default 200 (quick: 16)")
    parser.add_argument("--n-remove", type=int, default=None, help="greedy steps (default: full sweep; quick: 2)")
    parser.add_argument("--dtype", default=None, help="bf16 or fp32 (default: the library's choice)")
    parser.add_argument("--token-budget", type=int, default=None,
                        help="rows x padded length per batch (default: the device's, budget.default_token_budget)")
    parser.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS), help="which sweeps to time")
    parser.add_argument("--side-by-side", action="store_true",
                        help="run the arms at the same time, one process with one thread each (on a shared "
                             "machine, load then slows every arm alike); default: one after the other, in-process")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--arm-out", default=None, help=argparse.SUPPRESS)  # child of --side-by-side
    parser.add_argument("--out", default=None, help="output JSON path")
    return parser.parse_args()


def naive_scores(model, encoded, removed: tuple[int, ...]) -> np.ndarray:
    """Letter scores float32 [n_items, n_options] of the model without ``removed``, the textbook way.

    Runs ``model(...)`` on every batch (every position through every kept layer and the
    full-vocabulary head), log-softmaxes the last position and picks the option letters.
    """
    out = np.full((encoded.n_rows, encoded.n_options), -np.inf, dtype=np.float32)
    with torch.inference_mode(), drop_layers(model, removed):
        for batch in encoded.batches:
            logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                           position_ids=batch.position_ids, use_cache=False).logits  # [B, T, vocab]
            logprobs = torch.log_softmax(logits[:, -1].float(), dim=-1)[:, encoded.letter_ids]  # [B, K]
            for row, request in enumerate(batch.requests):
                out[request.item] = logprobs[row].numpy()
    for row, n_options in enumerate(encoded.row_options):  # items with fewer options: -inf pads
        out[row, n_options:] = -np.inf
    return out


def naive_sweep(model, tokenizer, calibration, evaluation, n_remove: int | None, token_budget: int) -> dict:
    """Greedy Iterative Pruning (criterion: mean DM) by the textbook loop; the same steps as ``prune``."""
    calibration_set = encode_items(model, tokenizer, calibration, "letter", "arc_easy", token_budget)
    evaluation_set = encode_items(model, tokenizer, evaluation, "letter", "arc_easy", token_budget)
    gold = np.array([item.gold for item in calibration])
    n_layers = model.config.num_hidden_layers
    n_steps = (n_layers - 1 if n_remove is None else n_remove) + 1
    removed: tuple[int, ...] = ()
    order, scores = [], [naive_scores(model, evaluation_set, removed)]
    for _ in range(1, n_steps):
        kept = [layer for layer in range(n_layers) if layer not in removed]
        margins = [float(metrics.mean_decision_margin(naive_scores(model, calibration_set, removed + (layer,)), gold))
                   for layer in kept]  # [n_kept]
        best = kept[int(np.argmax(margins))]  # ties: the lowest layer, as prune()
        removed += (best,)
        order.append(best)
        scores.append(naive_scores(model, evaluation_set, removed))
    return {"removal_order": order, "scores": np.stack(scores)}  # scores [n_steps, n_items, n_options]


def engine_sweep(model, tokenizer, calibration, evaluation, n_remove: int | None, cache: bool,
                 token_budget: int) -> dict:
    trace = prune(model, tokenizer, evaluation, "iterative", calibration=calibration, criterion="dm",
                  n_remove=n_remove, task="arc_easy", cache=cache, token_budget=token_budget,
                  progress="cached" if cache else "no_cache")
    return {"removal_order": trace.removal_order(), "scores": trace.scores}


def timed(sweep, *args) -> tuple[dict, float, float]:
    """(result, wall seconds, CPU seconds of this process); CPU time too, as a shared machine's load inflates wall time."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = sweep(*args)
    return result, time.perf_counter() - wall, time.process_time() - cpu


def max_difference(a: np.ndarray, b: np.ndarray) -> float:
    """Largest |a - b| over finite entries (-inf pads compare equal)."""
    with np.errstate(invalid="ignore"):  # -inf - -inf where both are padding
        return float(np.max(np.where(a == b, 0.0, np.abs(a - b))))


def run_in_process(args, arms, n_calibration: int, n_evaluation: int, n_remove: int | None) -> tuple[dict, object, int]:
    """{arm: {"wall_s", "cpu_s", "removal_order", "scores"}}, the model and the token budget."""
    model, tokenizer = load_model(args.model, dtype=args.dtype)
    token_budget = args.token_budget or default_token_budget(model_device(model))
    calibration, evaluation = split_calibration(load_task("arc_easy").items, n_calibration, n_evaluation, seed=0)
    score(model, tokenizer, evaluation[:8], "letter", task="arc_easy", progress=False)  # warm-up

    sweeps = {"cached": (engine_sweep, True), "no_cache": (engine_sweep, False), "naive": (naive_sweep, None)}
    runs = {}
    for arm in arms:
        sweep, cache = sweeps[arm]
        extra = (cache, token_budget) if cache is not None else (token_budget,)
        result, wall, cpu = timed(sweep, model, tokenizer, calibration, evaluation, n_remove, *extra)
        runs[arm] = {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), **result}
        print(f"{arm:9s}{wall:9.1f} s wall {cpu:9.1f} s CPU  removal order {result['removal_order']}", flush=True)
    return runs, model, token_budget


def run_side_by_side(arms) -> dict:
    """Start one child process per arm (1 thread each) at once; their runs, read back from ``--arm-out`` files."""
    with tempfile.TemporaryDirectory() as folder:
        argv = [a for a in sys.argv[1:] if a != "--side-by-side"]
        children = {}
        for arm in arms:
            out = Path(folder) / f"{arm}.npz"
            command = [sys.executable, __file__, *argv, "--arms", arm, "--threads", "1", "--arm-out", str(out)]
            children[arm] = (subprocess.Popen(command), out)
        runs = {}
        for arm, (child, out) in children.items():
            if child.wait() != 0:
                raise SystemExit(f"arm '{arm}' failed (exit {child.returncode})")
            with np.load(out) as saved:
                runs[arm] = {"wall_s": float(saved["wall_s"]), "cpu_s": float(saved["cpu_s"]),
                             "removal_order": saved["removal_order"].tolist(), "scores": saved["scores"]}
    return runs


def main() -> None:
    args = parse_arguments()
    if args.threads:
        torch.set_num_threads(args.threads)
    n_calibration = args.n_calibration or (8 if args.quick else 64)
    n_evaluation = args.n_evaluation or (16 if args.quick else 200)
    n_remove = args.n_remove if args.n_remove is not None else (2 if args.quick else None)
    if args.side_by_side:
        runs = run_side_by_side(args.arms)
        model = load_model(args.model, dtype=args.dtype)[0]
        token_budget = args.token_budget or default_token_budget(model_device(model))
    else:
        runs, model, token_budget = run_in_process(args, args.arms, n_calibration, n_evaluation, n_remove)
    if args.arm_out:
        (run,) = runs.values()
        np.savez(args.arm_out, wall_s=run["wall_s"], cpu_s=run["cpu_s"], scores=run["scores"],
                 removal_order=np.asarray(run["removal_order"], dtype=np.int64))
        return

    reference = runs[args.arms[0]]
    arms = {arm: {"wall_s": run["wall_s"], "cpu_s": run["cpu_s"],
                  "same_removals_as_" + args.arms[0]: run["removal_order"] == reference["removal_order"],
                  "max_abs_score_difference": (max_difference(run["scores"], reference["scores"])
                                               if run["removal_order"] == reference["removal_order"] else None)}
            for arm, run in runs.items()}
    ratios = {f"{arm}/cached": round(runs[arm]["wall_s"] / runs["cached"]["wall_s"], 3)
              for arm in runs if arm != "cached" and "cached" in runs}
    ratios_cpu = {f"{arm}/cached": round(runs[arm]["cpu_s"] / runs["cached"]["cpu_s"], 3)
                  for arm in runs if arm != "cached" and "cached" in runs}
    speedup = ratios.get("naive/cached")
    print(f"wall-time ratios {ratios}, CPU-time ratios {ratios_cpu} (goal naive/cached >= {GOAL})")

    parameter = next(model.parameters())
    n_steps = len(reference["removal_order"]) + 1
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
        "n_layers": model.config.num_hidden_layers,
        "n_steps": n_steps,
        "quick": args.quick,
        "full_sweep": n_steps == model.config.num_hidden_layers,
        "arms": arms,
        "ratios": ratios,
        "ratios_cpu": ratios_cpu,
        "speedup": speedup,
        "token_budget": token_budget,
        "protocol": ("side by side: one process per arm, 1 torch thread each, started together" if args.side_by_side
                     else f"one arm after the other in one process ({torch.get_num_threads()} torch threads)"),
        "goal": GOAL,
        "meets_goal": None if speedup is None else speedup >= GOAL,
        "removal_order": reference["removal_order"],
        "torch_threads": 1 if args.side_by_side else torch.get_num_threads(),
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
