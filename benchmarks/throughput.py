"""Scoring throughput: ``layercollapse.scoring.score`` vs lm-evaluation-harness ``HFLM.loglikelihood``.

Same process, same model object (embedded SmolLM2-135M), same dtype, same items:

* ``letter``: 200 MMLU test items (all subjects), harness task ``mmlu_<subject>`` requests;
* ``cloze``: 200 ARC-Easy validation items, harness task ``arc_easy`` requests.

The harness requests are built by the harness's own task definitions (see
``parity_lm_eval.py``) and run through ``HFLM.loglikelihood`` with batch_size 8
(its logits cache on, as by default). Both sides are warmed up once, then timed
alternately ``--repeats`` times; items/s uses the median time. Tokenisation is
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

from layercollapse.scoring import DEFAULT_TOKEN_BUDGET, build_requests, score  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
FORMATS = {"letter": "mmlu", "cloze": "arc_easy"}
GOALS = {"letter": 3.0, "cloze": 2.0}


def _time(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of ``fn()``; CPU time is less sensitive to other load."""
    start, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - start, time.process_time() - cpu


def token_stats(tokenizer, items, format: str, task: str) -> dict:
    requests = build_requests(tokenizer, items, format, task)
    lengths = np.array([len(r.tokens) for r in requests])
    return {"n_sequences": int(len(requests)), "tokens_total": int(lengths.sum()),
            "tokens_mean": float(lengths.mean()), "tokens_max": int(lengths.max()),
            "scored_positions": int(sum(max(r.n_target, 1) for r in requests))}


def bench_format(format: str, items, model, tokenizer, hflm, tasks, repeats: int, token_budget: int) -> dict:
    task = FORMATS[format]
    side = parity.harness_requests(items, task, tasks)
    ours_fn = lambda subset=items: score(model, tokenizer, subset, format, task=task,  # noqa: E731
                                         token_budget=token_budget, progress=False)
    theirs_fn = lambda s=side: parity.run_harness(hflm, s)  # noqa: E731

    # warm-up: once each, on a slice of the items
    warm = items[:16]
    ours_fn(warm)
    parity.run_harness(hflm, parity.harness_requests(warm, task, tasks))

    t_ours, t_theirs, c_ours, c_theirs = [], [], [], []
    for _ in range(repeats):
        for times, cpus, fn in ((t_ours, c_ours, ours_fn), (t_theirs, c_theirs, theirs_fn)):
            wall, cpu = _time(fn)
            times.append(wall)
            cpus.append(cpu)
        print(f"  {format}: layercollapse {t_ours[-1]:.2f}s (cpu {c_ours[-1]:.1f}s)  "
              f"harness {t_theirs[-1]:.2f}s (cpu {c_theirs[-1]:.1f}s)", flush=True)

    # sanity: the two sides scored the same thing
    ours = ours_fn().astype(np.float64)
    theirs = parity.harness_scores(parity.run_harness(hflm, side), ours.shape[1])
    finite = np.isfinite(ours)
    agree = float(np.mean(ours.argmax(-1) == theirs.argmax(-1)))

    n = len(items)
    m_ours, m_theirs = statistics.median(t_ours), statistics.median(t_theirs)
    return {
        "task": task, "n_items": n, **token_stats(tokenizer, items, format, task),
        "seconds_layercollapse": t_ours, "seconds_harness": t_theirs,
        "cpu_seconds_layercollapse": c_ours, "cpu_seconds_harness": c_theirs,
        "items_per_s_layercollapse": n / m_ours, "items_per_s_harness": n / m_theirs,
        "ratio": m_theirs / m_ours,
        "ratio_best_of": min(t_theirs) / min(t_ours),
        "ratio_cpu_time": statistics.median(c_theirs) / statistics.median(c_ours),
        "goal_ratio": GOALS[format], "meets_goal": bool(m_theirs / m_ours >= GOALS[format]),
        "prediction_agreement_pct": 100 * agree,
        "loglik_abs_diff_max": float(np.abs(ours[finite] - theirs[finite]).max()),
    }


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
    parser.add_argument("--token-budget", type=int, default=DEFAULT_TOKEN_BUDGET)
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
    from layercollapse.models import load_model

    items = {fmt: parity.load_items(task, args.n, args.seed) for fmt, task in FORMATS.items()}
    subjects = sorted({item.subject for item in items["letter"]})
    report = json.loads(args.out.read_text()) if args.out.exists() else {}
    report.update({"model": "smollm2-135m", "lm_eval": parity._version("lm_eval"), "torch": torch.__version__,
                   "threads": args.threads, "machine": platform.processor() or platform.machine(),
                   "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                   "harness_batch_size": args.batch_size, "layercollapse_token_budget": args.token_budget,
                   "timing": f"median of {args.repeats} alternating runs after one warm-up; items/s = n / median"})
    report.setdefault("results", {})
    with tempfile.TemporaryDirectory() as folder:
        tasks = parity.harness_tasks(subjects, Path(folder))
        for dtype in args.dtype:
            model, tokenizer = load_model("smollm2-135m", dtype=dtype, device="cpu")
            hflm = parity.make_hflm(model, tokenizer, args.batch_size)
            entry = report["results"].setdefault(dtype, {})
            for fmt in args.formats:
                result = bench_format(fmt, list(items[fmt]), model, tokenizer, hflm, tasks,
                                      args.repeats, args.token_budget)
                entry[fmt] = result
                print(f"{dtype} {fmt:<6} ({result['task']}, {result['n_items']} items): layercollapse "
                      f"{result['items_per_s_layercollapse']:.2f} items/s, harness {result['items_per_s_harness']:.2f}"
                      f" items/s, ratio {result['ratio']:.2f}x (goal {GOALS[fmt]}x) "
                      f"agreement {result['prediction_agreement_pct']:.1f}%", flush=True)
                args.out.parent.mkdir(parents=True, exist_ok=True)
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
