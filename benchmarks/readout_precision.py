"""How much bf16 scores depend on the batch layout, with the readout in bf16 and in float32.

    python benchmarks/readout_precision.py [--items 64] [--model smollm2-135m] [--formats letter cloze]

Scores the same ARC-Easy items with a bf16 model at token budgets 128, 1,024 and 8,192 (different
batch shapes and padding), once with the readout after the last hidden state in the model's dtype
(``set_readout(model, "model")``, how the committed default results were computed) and once in float32
(``"float32"``, the library default), and reports per readout: the largest and mean |Δ| of the option
log-probabilities between budgets, the largest change of mean Decision Margin, the prediction flips,
and the distance to the float32 model at the same budget; plus the wall time of both readouts side
by side (ratio, not seconds, is the result). With ``--greedy-steps N`` (default 5; 0 skips it, it
takes about 10 minutes on 2 cores) it also runs the first N steps of Iterative Pruning (16
calibration, 32 evaluation items, letter format) at each budget and readout, and records the removal
orders and criterion values: whether a greedy choice survives a change of batch layout.
Writes ``benchmarks/results/readout_precision.json``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import numpy as np
import torch
from layercollapse.data.tasks import load_task, split_calibration, subsample
from layercollapse.measures import metrics
from layercollapse.model.architectures import set_readout
from layercollapse.model.loading import load_model
from layercollapse.pruning.engine import prune
from layercollapse.readout.scoring import score

BUDGETS = (128, 1024, 8192)


def budget_dependence(scores: dict[int, np.ndarray], gold: np.ndarray) -> dict[str, float]:
    """Largest / mean |Δ| of option log-probs, largest |Δ mean DM| and flips over every pair of budgets."""
    pairs = list(itertools.combinations(sorted(scores), 2))
    deltas = [np.abs(scores[a] - scores[b])[np.isfinite(scores[a])] for a, b in pairs]
    return {"max_abs_delta": float(max(d.max() for d in deltas)),
            "mean_abs_delta": float(np.mean([d.mean() for d in deltas])),
            "max_delta_mean_dm": float(max(abs(metrics.mean_decision_margin(scores[a], gold)
                                               - metrics.mean_decision_margin(scores[b], gold)) for a, b in pairs)),
            "prediction_flips": int(max((metrics.predictions(scores[a]) != metrics.predictions(scores[b])).sum()
                                        for a, b in pairs))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=64)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--formats", nargs="+", default=["letter", "cloze"])
    parser.add_argument("--greedy-steps", type=int, default=5)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "readout_precision.json"))
    args = parser.parse_args()
    items = subsample(load_task("arc_easy").items, args.items, seed=0)
    gold = np.array([item.gold for item in items])
    reference_model, tokenizer = load_model(args.model, dtype="fp32", device="cpu")
    model, _ = load_model(args.model, dtype="bf16", device="cpu")
    results: dict = {"model": args.model, "items": args.items, "budgets": list(BUDGETS),
                     "threads": torch.get_num_threads(), "formats": {}}
    for format in args.formats:
        reference = {budget: score(reference_model, tokenizer, items, format, token_budget=budget, progress=False)
                     for budget in BUDGETS}
        entry = {"fp32 model": budget_dependence(reference, gold)}
        for readout in ("model", "float32"):
            set_readout(model, readout)
            seconds, scores = [], {}
            for budget in BUDGETS:
                start = time.perf_counter()
                scores[budget] = score(model, tokenizer, items, format, token_budget=budget, progress=False)
                seconds.append(time.perf_counter() - start)
            entry[f"bf16, {readout} readout"] = {
                **budget_dependence(scores, gold), "seconds": sum(seconds),
                "max_abs_delta_to_fp32_model": float(max(np.abs(scores[b] - reference[b])[np.isfinite(scores[b])].max()
                                                         for b in BUDGETS))}
        entry["float32 / model readout wall time"] = (entry["bf16, float32 readout"]["seconds"]
                                                      / entry["bf16, model readout"]["seconds"])
        results["formats"][format] = entry
        for name, row in entry.items():
            print(format, name, row)
    if args.greedy_steps:
        results["greedy"] = greedy_orders(model, tokenizer, args.greedy_steps)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")


def greedy_orders(model, tokenizer, n_steps: int) -> dict[str, dict]:
    """Removal order and criterion (calibration mean DM) of the first ``n_steps`` greedy steps per readout and budget."""
    calibration, evaluation = split_calibration(load_task("arc_easy").items, 16, 32, 0)
    runs = {}
    for readout in ("model", "float32"):
        set_readout(model, readout)
        for budget in BUDGETS:
            trace = prune(model, tokenizer, evaluation, "iterative", calibration=calibration, n_remove=n_steps,
                          format="letter", task="arc_easy", token_budget=budget, progress=False)
            runs[f"{readout} readout, budget {budget}"] = {"removed": trace.removal_order(),
                                                           "criterion": [round(float(v), 5) for v in trace.criterion]}
            print(readout, budget, runs[f"{readout} readout, budget {budget}"], flush=True)
    return runs


if __name__ == "__main__":
    main()
