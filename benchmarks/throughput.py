"""Scoring throughput: ``layercollapse.readout.scoring.score`` vs lm-evaluation-harness ``HFLM.loglikelihood``.

Same process, same model object (embedded SmolLM2-135M), same dtype, same items:

* ``letter``: 200 MMLU test items (all subjects), harness task ``mmlu_<subject>`` requests;
* ``cloze``: 200 ARC-Easy validation items, harness task ``arc_easy`` requests.

The harness requests are built by the harness's own task definitions (see
``parity_lm_eval.py``) and run through ``HFLM.loglikelihood`` with batch_size 8
(its logits cache on, as by default). Both sides are warmed up once, then timed
alternately ``--repeats`` times; items/s uses the best (least disturbed) time, and the
median is kept. Tokenisation is
inside the timed region on both sides.

Usage:
    python benchmarks/throughput.py [--dtype bf16|fp32 ...] [--profile]

Writes ``benchmarks/results/throughput.json`` (one entry per dtype, merged with
what is already there). Goals: >= 3x for letter, >= 2x for cloze.
``--profile [letter] [cloze]`` adds a cProfile + torch.profiler breakdown of both sides.
Wall time on a shared machine is noisy: process CPU time is recorded too.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import os
import platform
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import parity_lm_eval as parity  # noqa: E402
from layercollapse.readout.budget import default_token_budget  # noqa: E402
from layercollapse.readout.scoring import build_requests, score  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
FORMATS = {"letter": "mmlu", "cloze": "arc_easy"}
GOALS = {"letter": 3.0, "cloze": 2.0}


def _time(fn) -> tuple[float, float, object]:
    """(wall seconds, CPU seconds of this process, result) of ``fn()``; CPU time is less sensitive to other load."""
    start, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return time.perf_counter() - start, time.process_time() - cpu, result


def token_stats(tokenizer, items, format: str, task: str) -> dict:
    requests = build_requests(tokenizer, items, format, task)
    lengths = np.array([len(r.tokens) for r in requests])
    return {"n_sequences": int(len(requests)), "tokens_total": int(lengths.sum()),
            "tokens_mean": float(lengths.mean()), "tokens_max": int(lengths.max()),
            "scored_positions": int(sum(max(r.n_target, 1) for r in requests))}


def bench_format(format: str, items, model, tokenizer, hflm, tasks, repeats: int, token_budget: int,
                 extra_budgets: list[int]) -> dict:
    """Time layercollapse (at ``token_budget`` and each of ``extra_budgets``) and the harness on the same items.

    Runs alternate (the order flips every repeat) so that load from other processes hits both
    sides alike; the headline ratio uses the fastest run of each side (the least disturbed one),
    the median ratio is kept too.
    """
    task = FORMATS[format]
    side = parity.harness_requests(items, task, tasks)
    budgets = [token_budget] + [b for b in extra_budgets if b != token_budget]
    runs = {f"layercollapse@{b}": (lambda b=b: score(model, tokenizer, items, format, task=task,
                                                     token_budget=b, progress=False)) for b in budgets}
    if format == "cloze":  # one sequence per option, as the harness runs them (score packs them by default)
        runs.update({f"per_option@{b}": (lambda b=b: score(model, tokenizer, items, format, task=task, token_budget=b,
                                                           progress=False, shared_context=False)) for b in budgets})
    runs["harness"] = lambda: parity.run_harness(hflm, side)

    # warm-up: once each, on a slice of the items
    warm = items[:16]
    score(model, tokenizer, warm, format, task=task, token_budget=token_budget, progress=False)
    parity.run_harness(hflm, parity.harness_requests(warm, task, tasks))

    wall: dict[str, list[float]] = {name: [] for name in runs}
    cpu: dict[str, list[float]] = {name: [] for name in runs}
    outputs: dict[str, object] = {}  # each arm's scores (the harness: its raw results) from its last timed run
    for repeat in range(repeats):
        order = list(runs) if repeat % 2 == 0 else list(reversed(runs))
        for name in order:
            w, c, outputs[name] = _time(runs[name])
            wall[name].append(w)
            cpu[name].append(c)
        print(f"  {format} repeat {repeat}: " + "  ".join(f"{name} {wall[name][-1]:.2f}s (cpu {cpu[name][-1]:.1f}s)"
                                                        for name in runs), flush=True)

    # sanity: the two sides scored the same thing
    ours_name = f"layercollapse@{token_budget}"
    ours = outputs[ours_name].astype(np.float64)
    theirs = parity.harness_scores(outputs["harness"], ours.shape[1])
    finite = np.isfinite(ours)
    agree = float(np.mean(ours.argmax(-1) == theirs.argmax(-1)))
    per_option_agree = {name: float(np.mean(outputs[name].argmax(-1) == theirs.argmax(-1)))
                        for name in runs if name.startswith("per_option@")}

    n = len(items)
    best = {name: min(v) for name, v in wall.items()}
    median = {name: statistics.median(v) for name, v in wall.items()}
    ratio = best["harness"] / best[ours_name]
    return {
        "task": task, "n_items": n, **token_stats(tokenizer, items, format, task),
        "wall_seconds": wall, "cpu_seconds": cpu,
        "items_per_s_best": {name: n / t for name, t in best.items()},
        "items_per_s_median": {name: n / t for name, t in median.items()},
        "items_per_s_layercollapse": n / best[ours_name], "items_per_s_harness": n / best["harness"],
        "ratio": ratio,
        "ratio_median": median["harness"] / median[ours_name],
        "ratio_cpu_time": statistics.median(cpu["harness"]) / statistics.median(cpu[ours_name]),
        "ratio_by_budget": {name.split("@")[1]: best["harness"] / t for name, t in best.items()
                            if name.startswith("layercollapse@")},
        "ratio_per_option_by_budget": {name.split("@")[1]: best["harness"] / t for name, t in best.items()
                                       if name.startswith("per_option@")},
        "goal_ratio": GOALS[format], "meets_goal": bool(ratio >= GOALS[format]),
        "prediction_agreement_pct": 100 * agree,
        "per_option_agreement_pct": {name: 100 * a for name, a in per_option_agree.items()},
        "loglik_abs_diff_max": float(np.abs(ours[finite] - theirs[finite]).max()),
    }


def batch_shape_breakdown(model, repeats: int = 3, length: int = 120, n_tokens_rows: int = 64) -> dict:
    """Seconds for ``n_tokens_rows`` x ``length`` tokens: backbone at 8 rows/batch (harness batch) vs
    64 rows/batch (an 8,192-token budget, the GPU default), and the harness's extra full-vocabulary
    logits + log-softmax at 8 rows. Best of ``repeats``."""
    def run(rows: int, full_logits: bool) -> None:
        ids = torch.randint(100, 1000, (rows, length))
        with torch.inference_mode():
            if full_logits:
                torch.log_softmax(model(ids).logits, dim=-1)
            else:
                model.model(ids, use_cache=False)

    configs = {"backbone_8_rows": (8, False), "backbone_64_rows": (64, False), "full_logits_8_rows": (8, True)}
    for rows, full in configs.values():
        run(rows, full)
    times = {name: [] for name in configs}
    for _ in range(repeats):
        for name, (rows, full) in configs.items():
            start = time.perf_counter()
            for _ in range(n_tokens_rows // rows):
                run(rows, full)
            times[name].append(time.perf_counter() - start)
    best = {name: min(v) for name, v in times.items()}
    return {"tokens": n_tokens_rows * length, "seconds_best": best, "seconds_all": times,
            "full_logits_overhead": best["full_logits_8_rows"] / best["backbone_8_rows"],
            "big_batch_slowdown": best["backbone_64_rows"] / best["backbone_8_rows"]}


def profile_format(format: str, items, model, tokenizer, hflm, tasks, token_budget: int, harness: bool = False,
                   top: int = 18) -> dict:
    """Where the time goes: torch operator table and cProfile (cumulative) of layercollapse (and the harness)."""
    from torch.profiler import ProfilerActivity, profile

    task = FORMATS[format]
    side = parity.harness_requests(items, task, tasks)
    runs = {
        "layercollapse": lambda: score(model, tokenizer, items, format, task=task, token_budget=token_budget,
                                       progress=False),
    }
    if harness:  # the harness's full-vocabulary log-softmax makes its profile memory-hungry
        runs["harness"] = lambda: parity.run_harness(hflm, side)
    out = {"n_items": len(items)}
    for name, fn in runs.items():
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            fn()
        ops = prof.key_averages(group_by_input_shape=False)
        table = sorted(ops, key=lambda e: -e.self_cpu_time_total)[:top]
        total = sum(e.self_cpu_time_total for e in ops)
        out[name] = {"torch_self_cpu_s_total": total / 1e6,
                     "torch_ops": [{"op": e.key, "self_cpu_s": e.self_cpu_time_total / 1e6,
                                    "pct": 100 * e.self_cpu_time_total / total, "calls": e.count} for e in table]}
        profiler = cProfile.Profile()
        profiler.enable()
        fn()
        profiler.disable()
        stream = io.StringIO()
        pstats.Stats(profiler, stream=stream).sort_stats("cumulative").print_stats(top)
        out[name]["cprofile_cumulative"] = stream.getvalue().splitlines()[:top + 12]
        print(f"\n=== profile {name} ({format}) ===")
        for row in out[name]["torch_ops"][:12]:
            print(f"  {row['op']:<40} {row['self_cpu_s']:8.2f}s {row['pct']:5.1f}%  x{row['calls']}")
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", nargs="+", choices=["bf16", "fp32"], default=["bf16"])
    parser.add_argument("--n", type=int, default=200, help="items per format")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8, help="harness batch size")
    parser.add_argument("--token-budget", type=int, default=default_token_budget("cpu"),
                        help="layercollapse's budget (default: the CPU default of budget.default_token_budget)")
    parser.add_argument("--extra-budgets", type=int, nargs="*", default=[8192],
                        help="also time layercollapse at these token budgets")
    parser.add_argument("--breakdown", action="store_true", help="time backbone batch shapes and full logits")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--formats", nargs="+", choices=list(FORMATS), default=list(FORMATS))
    parser.add_argument("--profile", nargs="*", choices=list(FORMATS), default=None,
                        help="also profile these formats (default when given bare: cloze)")
    parser.add_argument("--profile-n", type=int, default=64, help="items profiled")
    parser.add_argument("--profile-harness", action="store_true", help="profile the harness side too")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS / "throughput.json")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    from layercollapse.model.loading import load_model

    items = {fmt: parity.load_items(task, args.n, args.seed) for fmt, task in FORMATS.items()}
    subjects = sorted({item.subject for item in items["letter"]})
    report = json.loads(args.out.read_text()) if args.out.exists() else {}
    report.update({"model": "smollm2-135m", "lm_eval": parity._version("lm_eval"), "torch": torch.__version__,
                   "threads": args.threads, "machine": platform.processor() or platform.machine(),
                   "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                   "harness_batch_size": args.batch_size, "layercollapse_token_budget": args.token_budget,
                   "timing": f"best (min) of {args.repeats} alternating runs after one warm-up, items/s = n / best; "
                             "medians kept (the machine is shared: wall times vary up to 5x run to run)"})
    report.setdefault("results", {})
    with tempfile.TemporaryDirectory() as folder:
        tasks = parity.harness_tasks(subjects, Path(folder))
        for dtype in args.dtype:
            model, tokenizer = load_model("smollm2-135m", dtype=dtype, device="cpu")
            hflm = parity.make_hflm(model, tokenizer, args.batch_size)
            entry = report["results"].setdefault(dtype, {})
            for fmt in args.formats:
                result = bench_format(fmt, list(items[fmt]), model, tokenizer, hflm, tasks,
                                      args.repeats, args.token_budget, args.extra_budgets)
                entry[fmt] = result
                others = ", ".join(f"budget {b}: {r:.2f}x" for b, r in result["ratio_by_budget"].items())
                others += "".join(f", one sequence per option @ {b}: {r:.2f}x"
                                  for b, r in result["ratio_per_option_by_budget"].items())
                print(f"{dtype} {fmt:<6} ({result['task']}, {result['n_items']} items): layercollapse "
                      f"{result['items_per_s_layercollapse']:.2f} items/s, harness {result['items_per_s_harness']:.2f}"
                      f" items/s (best of {args.repeats}), ratio {result['ratio']:.2f}x (median {result['ratio_median']:.2f}x;"
                      f" goal {GOALS[fmt]}x; {others}) agreement {result['prediction_agreement_pct']:.1f}%", flush=True)
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(json.dumps(report, indent=2) + "\n")
            if args.breakdown:
                entry["batch_shape_breakdown"] = batch_shape_breakdown(model, args.repeats)
                print(f"{dtype} breakdown: {entry['batch_shape_breakdown']['seconds_best']}", flush=True)
                args.out.write_text(json.dumps(report, indent=2) + "\n")
            for fmt in ([] if args.profile is None else args.profile or ["cloze"]):
                entry[f"{fmt}_profile"] = profile_format(fmt, list(items[fmt])[: args.profile_n], model, tokenizer,
                                                         hflm, tasks, args.token_budget, args.profile_harness)
                args.out.write_text(json.dumps(report, indent=2) + "\n")
            del model, hflm
            gc.collect()
    print(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    main()
