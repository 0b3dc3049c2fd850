"""bf16 vs fp32 on this CPU: wall time of letter scoring with the embedded SmolLM2, side by side.

    python benchmarks/dtype_cpu.py [--items 64]

Decides ``models.default_dtype`` on CPUs: bf16 is the default only where it is faster
(native AVX512-BF16 / AMX). Writes benchmarks/results/dtype_cpu.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from layercollapse.data.tasks import load_task, subsample
from layercollapse.measures import metrics
from layercollapse.model.loading import cpu_supports_fast_bf16, load_model
from layercollapse.readout.scoring import score


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    items = subsample(load_task("arc_easy").items, args.items, seed=0)
    gold = np.array([item.gold for item in items])
    results = {"cpu_capability": torch.backends.cpu.get_cpu_capability(), "fast_bf16": cpu_supports_fast_bf16(),
               "machine": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
               "items": args.items}
    for dtype in ("fp32", "bf16"):
        model, tokenizer = load_model("smollm2-135m", dtype=dtype, device="cpu")
        score(model, tokenizer, items[:8], "letter", progress=False)  # warm-up
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            scores = score(model, tokenizer, items, "letter", progress=False)
            times.append(time.perf_counter() - start)
        results[dtype] = {"seconds": min(times), "items_per_s": args.items / min(times),
                          "accuracy": float(metrics.accuracy(scores, gold))}
        print(f"{dtype}: {min(times):.2f} s for {args.items} items ({args.items / min(times):.1f} items/s)")
    results["bf16_speedup"] = results["fp32"]["seconds"] / results["bf16"]["seconds"]
    print(f"bf16 is {results['bf16_speedup']:.2f}x fp32 on this CPU")
    out = Path(__file__).parent / "results" / "dtype_cpu.json"
    out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
