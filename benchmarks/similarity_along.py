"""What reusing each network's prefix saves when measuring similarity along a pruning trace.

    python benchmarks/similarity_along.py [--repeats 3] [--models smollm2-135m]

The final states of every network along a trace, two ways, side by side (alternating, ``--repeats``
times) on the embedded models in bf16: from scratch (``hidden_states_at_read_positions(...)[-1]`` per
step, the intact network twice, as ``similarity_along`` did before), and ``similarity.FinalStates``
(each step runs only the layers after the one it drops, the intact network once). Both must give the
same states bit for bit (checked here too); the report is the median wall-time ratio (prefix / from
scratch). The trace is a random removal order (seed 0), ``n_steps`` removals, so the dropped layer
sits anywhere in the network, as along Iterative Pruning. Writes ``benchmarks/results/similarity_along.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from layercollapse.controls.similarity import FinalStates, hidden_states_at_read_positions
from layercollapse.data.tasks import load_task, split_calibration
from layercollapse.model.layers import n_layers
from layercollapse.model.loading import load_model

RESULTS = Path(__file__).resolve().parent / "results" / "similarity_along.json"

#: (model, format, n_evaluation, n_steps)
CASES = (("qwen2.5-coder-1.5b", "letter", 48, 8), ("smollm2-135m", "cloze", 48, 10))


def networks_along(n_total: int, n_steps: int, seed: int = 0) -> list[list[int]]:
    """Kept layers at steps 0..n_steps of a random removal order."""
    order = np.random.default_rng(seed).permutation(n_total)
    return [sorted(set(range(n_total)) - set(order[:step].tolist())) for step in range(n_steps + 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", nargs="*", default=None, help="run only the cases of these models")
    args = parser.parse_args()
    items = load_task("arc_easy", "test").items
    rows = []
    for name, format, n_eval, n_steps in CASES:
        if args.models and name not in args.models:
            continue
        model, tokenizer = load_model(name, dtype="bf16")
        evaluation = split_calibration(items, 1, n_eval, seed=0)[1]
        networks = networks_along(n_layers(model), n_steps)

        def from_scratch() -> list[np.ndarray]:
            intact = hidden_states_at_read_positions(model, tokenizer, evaluation, format, networks[0], "arc_easy")[-1]
            return [intact] + [hidden_states_at_read_positions(model, tokenizer, evaluation, format, kept,
                                                               "arc_easy")[-1] for kept in networks]

        def with_prefix() -> list[np.ndarray]:
            states = FinalStates(model, tokenizer, evaluation, format, "arc_easy")
            return [states.along(networks[0])] + [states.along(kept) for kept in networks]

        identical = all(np.array_equal(a, b) for a, b in zip(from_scratch(), with_prefix()))  # also the warm-up
        times: dict[str, list[float]] = {"from_scratch": [], "prefix": []}
        for _ in range(args.repeats):
            for label, run in (("from_scratch", from_scratch), ("prefix", with_prefix)):
                start = time.perf_counter()
                run()
                times[label].append(time.perf_counter() - start)
        ratio = statistics.median(p / s for p, s in zip(times["prefix"], times["from_scratch"]))
        rows.append({"model": name, "format": format, "n_evaluation": n_eval, "n_steps": n_steps,
                     "identical": identical, **{f"{k}_s": v for k, v in times.items()}, "median_ratio": round(ratio, 3)})
        print(f"{name:20s} {format:6s} prefix / from scratch = {ratio:.3f}x (median of {args.repeats}; from scratch "
              f"{statistics.median(times['from_scratch']):.1f} s); identical states: {identical}")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({"threads": torch.get_num_threads(), "cases": rows}, indent=1) + "\n")
    print(f"written {RESULTS}")


if __name__ == "__main__":
    main()
