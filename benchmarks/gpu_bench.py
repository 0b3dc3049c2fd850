"""GPU path at paper scale: matmul rate, letter-scoring throughput, greedy pruning step, full-sweep estimate.

Builds a randomly initialised model with Llama-2-7B's shapes (32 layers, d_model 4096, MLP
11008, 32 heads, vocabulary 32000) directly on the GPU in bf16 (``torch.set_default_device``
/ ``set_default_dtype``: no CPU copy, no checkpoint), SDPA attention, and measures through the
library's own machinery (``batching.Request`` / ``plan_batches`` / ``collate``, then
``pruning.PrefixRunner`` and ``pruning.greedy_planner``):

a. the bf16 matmul rate: large square matmuls timed with CUDA events (best of several sizes);
b. letter scoring of 1,000 MMLU-length prompts: random token ids, lengths drawn from a
   log-normal (median 580 tokens, sigma 0.27, clipped to [128, 2048]; mean ~ 600). Measured:
   5-shot MMLU letter prompts are median 504 tokens (sigma of log 0.27) with SmolLM2's
   tokenizer; Llama-2's 32k vocabulary gives ~15% more tokens;
c. the achieved fraction of the matmul rate, model FLOPs ~ 2 x n_params x real tokens, with
   n_params the decoder's (the embedding is a lookup; the unembedding, 2 x d x vocab, runs at
   one position per prompt and is added once per prompt);
d. the wall time of one greedy pruning step (32 candidates, criterion mean DM, on a
   calibration set) with and without prefix caching, and from the two a per-run / per-layer
   cost model, extrapolated to a full greedy sweep (31 steps) with ``--sweep-calibration``
   (default 128, the paper profile's) calibration items and ``--sweep-items`` (default 1,000)
   evaluation items scored after every step; which of the two sets get a prefix cache is
   decided by ``pruning.plan_prefix_cache`` with this device's ``memory_budget``.

Goals (on one H200): (c) >= 40% of the measured bf16 matmul rate; (d) full sweep < 30 min.

Usage:
    python benchmarks/gpu_bench.py                 # on a CUDA GPU (~4 min on an H200)
    python benchmarks/gpu_bench.py --tiny          # same code, CPU, hidden 64, 4 layers, 16 prompts (seconds; CI)

Writes ``benchmarks/results/gpu_bench_<device>.json`` (``cpu``, or the GPU's name such as
``nvidia-h200``), unless ``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import time
from collections.abc import Callable
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import layercollapse  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from layercollapse.pruning.encoding import EncodedSet  # noqa: E402
from layercollapse.pruning.prefix import PrefixRunner, cache_bytes, memory_budget, plan_prefix_cache  # noqa: E402
from layercollapse.pruning.schedules import CRITERIA, criterion_function, greedy_planner  # noqa: E402
from layercollapse.readout.batching import Request, collate, plan_batches  # noqa: E402
from layercollapse.readout.budget import GPU_TOKEN_BUDGET  # noqa: E402
from layercollapse.storage.provenance import cpu_model  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
LLAMA2_7B = dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
                 num_key_value_heads=32, vocab_size=32000)
TINY = dict(hidden_size=64, intermediate_size=172, num_hidden_layers=4, num_attention_heads=4,
            num_key_value_heads=4, vocab_size=32000)
LETTER_IDS = (319, 350, 315, 360)  # " A" " B" " C" " D" in Llama-2's tokenizer (any ids do: the weights are random)
BOS_ID, PAD_ID = 1, 0
PROMPT_MEDIAN, PROMPT_SIGMA, PROMPT_MIN, PROMPT_MAX = 580, 0.27, 128, 2048
TINY_PROMPT_MEDIAN = 64  # --tiny: short prompts (clipped to [16, 256]), so CI runs in seconds
GOAL_FRACTION = 0.40  # of the measured bf16 matmul rate
GOAL_SWEEP_MINUTES = 30.0  # full greedy sweep of a 32-layer 7B model, 1,000 evaluation items, one H200


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="CPU, hidden 64, 4 layers, 16 prompts: seconds (CI)")
    parser.add_argument("--device", default=None, help="default: cuda (cpu with --tiny)")
    parser.add_argument("--n-prompts", type=int, default=None, help="prompts scored for (b) (default 1000; tiny 16)")
    parser.add_argument("--n-calibration", type=int, default=None,
                        help="calibration prompts of the timed greedy step (default 64; tiny 8)")
    parser.add_argument("--token-budget", type=int, default=GPU_TOKEN_BUDGET, help="rows x padded length per batch")
    parser.add_argument("--sweep-calibration", type=int, default=128, help="calibration items of the extrapolated sweep")
    parser.add_argument("--sweep-items", type=int, default=1000, help="evaluation items of the extrapolated sweep")
    parser.add_argument("--prompt-median", type=int, default=None,
                        help=f"median prompt length in tokens (default {PROMPT_MEDIAN}; tiny {TINY_PROMPT_MEDIAN})")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's; tiny: 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="output JSON path")
    return parser.parse_args(argv)


# ------------------------------------------------------------------------------ timing


class Clock:
    """Wall time of a block: CUDA events on a GPU (after a synchronize), perf_counter on CPU."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"

    @contextmanager
    def time(self, into: dict, key: str):
        if self.cuda:
            torch.cuda.synchronize()
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            yield
            end.record()
            end.synchronize()
            into[key] = start.elapsed_time(end) / 1000.0
        else:
            start = time.perf_counter()
            yield
            into[key] = time.perf_counter() - start


def matmul_rate(device: torch.device, dtype: torch.dtype, sizes: tuple[int, ...], clock: Clock,
                min_seconds: float) -> dict:
    """FLOP/s of square matmuls ``[n, n] @ [n, n]`` (2 n^3 FLOPs each); the best size is the reference rate."""
    per_size = {}
    for n in sizes:
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        for _ in range(3):  # warm-up: cuBLAS handles, clocks
            a @ b
        timed: dict = {}
        iterations = 1
        while True:
            with clock.time(timed, "s"):
                for _ in range(iterations):
                    a @ b
            if timed["s"] >= min_seconds or iterations >= 1 << 14:
                break
            iterations *= 2
        per_size[str(n)] = 2.0 * n**3 * iterations / timed["s"] / 1e12
        del a, b
    best = max(per_size, key=per_size.get)
    return {"tflops": per_size[best], "best_size": int(best), "tflops_per_size": per_size,
            "dtype": str(dtype).removeprefix("torch."), "timing": "CUDA events" if clock.cuda else "perf_counter"}


# ------------------------------------------------------------------------------- model


def build_model(shape: dict, device: torch.device, dtype: torch.dtype, seed: int) -> tuple[torch.nn.Module, bool]:
    """A random Llama with ``shape``, created directly on ``device`` in ``dtype`` (no CPU copy); SDPA attention.

    Returns (model in eval mode, whether the weights were created on the device).
    """
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(**shape, max_position_embeddings=4096, attn_implementation="sdpa")
    previous_device, previous_dtype = torch.get_default_device(), torch.get_default_dtype()
    torch.manual_seed(seed)
    torch.set_default_device(device)
    torch.set_default_dtype(dtype)
    try:
        model = LlamaForCausalLM(config)
    finally:
        torch.set_default_device(previous_device)
        torch.set_default_dtype(previous_dtype)
    parameter = next(model.parameters())
    on_device = parameter.device.type == device.type
    if not on_device or parameter.dtype != dtype:
        model.to(device=device, dtype=dtype)
    model.eval()
    model.layercollapse_name = f"random-llama-{shape['num_hidden_layers']}x{shape['hidden_size']}-seed{seed}"
    return model, on_device


# ----------------------------------------------------------------------------- prompts


def prompt_lengths(n: int, rng: np.random.Generator, median: int = PROMPT_MEDIAN) -> np.ndarray:
    """MMLU 5-shot-like prompt lengths in tokens (log-normal around ``median``): int [n]."""
    lengths = rng.lognormal(math.log(median), PROMPT_SIGMA, n).round()
    scale = median / PROMPT_MEDIAN
    return np.clip(lengths, max(2, int(PROMPT_MIN * scale)), int(PROMPT_MAX * scale)).astype(np.int64)


def random_requests(n: int, vocab_size: int, rng: np.random.Generator, median: int = PROMPT_MEDIAN) -> list[Request]:
    """Letter-format requests: BOS then random token ids, read out at the last position."""
    requests = []
    for index, length in enumerate(prompt_lengths(n, rng, median)):
        body = rng.integers(3, vocab_size, int(length) - 1)
        requests.append(Request(index, -1, (BOS_ID, *map(int, body)), 0))
    return requests


def encode(requests: list[Request], device: torch.device, token_budget: int) -> EncodedSet:
    """Batches as ``pruning.encode_items`` builds them (length-sorted, left-padded, on the device)."""
    plan = plan_batches([len(r.tokens) for r in requests], token_budget)
    batches = [collate([requests[i] for i in indices], PAD_ID, device) for indices in plan]
    return EncodedSet(batches, np.full(len(requests), len(LETTER_IDS), dtype=np.int64),
                      torch.tensor(LETTER_IDS, device=device), 0)


def real_tokens(requests: list[Request]) -> int:
    return sum(len(request.tokens) for request in requests)


# --------------------------------------------------------------------------- measures


def measure_scoring(model, requests: list[Request], device: torch.device, token_budget: int, clock: Clock,
                    rate_tflops: float, n_params: int) -> dict:
    """(b), (c): letter scoring of every prompt through ``PrefixRunner`` (naive path: the whole network)."""
    n_layers = model.config.num_hidden_layers
    kept = range(n_layers)
    warm = encode(requests[: max(2, len(requests) // 50)], device, token_budget)
    PrefixRunner(model, warm, use_cache=False).run(kept)  # warm-up: kernels, allocator
    encoded = encode(requests, device, token_budget)
    timed: dict = {}
    with clock.time(timed, "s"):
        scores = PrefixRunner(model, encoded, use_cache=False).run(kept)
    seconds, tokens, padded = timed["s"], real_tokens(requests), encoded.n_tokens
    # The embedding is a lookup and the unembedding runs at the read position only.
    unembedding = 2.0 * model.config.hidden_size * model.config.vocab_size * len(requests)
    flops = 2.0 * n_params * tokens + unembedding
    return {
        "n_prompts": len(requests), "tokens_real": tokens, "tokens_padded": padded,
        "tokens_mean": tokens / len(requests), "tokens_max": max(len(r.tokens) for r in requests),
        "n_batches": len(encoded.batches), "token_budget": token_budget, "seconds": seconds,
        "tokens_per_s": tokens / seconds, "padded_tokens_per_s": padded / seconds, "items_per_s": len(requests) / seconds,
        "model_flops": flops, "model_tflops_per_s": flops / seconds / 1e12,
        "fraction_of_matmul": flops / seconds / 1e12 / rate_tflops,
        "fraction_of_matmul_padded": (2.0 * n_params * padded + unembedding) / seconds / 1e12 / rate_tflops,
        "n_params_counted": n_params,
        "flops_formula": "2 x n_params (decoder layers + final norm) x real tokens + 2 x d_model x vocab x prompts", "finite_scores": bool(np.isfinite(scores).all()),
    }


def measure_greedy_step(model, requests: list[Request], device: torch.device, token_budget: int, clock: Clock,
                        seed: int) -> dict:
    """(d): step 0 (intact network) and step 1 (one candidate per layer) of Iterative Pruning, cached and naive."""
    n_layers = model.config.num_hidden_layers
    encoded = encode(requests, device, token_budget)
    gold = np.random.default_rng(seed + 1).integers(0, len(LETTER_IDS), len(requests))
    criterion = criterion_function("dm", encoded, gold)
    kept = tuple(range(n_layers))
    out = {"n_calibration": len(requests), "tokens_real": real_tokens(requests), "tokens_padded": encoded.n_tokens,
           "n_candidates": n_layers, "criterion": "dm"}
    for name, use_cache in (("cached", True), ("naive", False)):
        runner = PrefixRunner(model, encoded, use_cache=use_cache)
        plan = greedy_planner(runner, criterion, CRITERIA["dm"])
        timed: dict = {}
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        with clock.time(timed, "step0_s"):
            plan(0, kept)
        with clock.time(timed, "step_s"):
            removal = plan(1, kept)
        out[name] = {**timed, "removed": list(removal.removed), "criterion_value": removal.criterion,
                     "layer_runs": runner.n_layer_runs,
                     "cache_gb": cache_bytes(n_layers, encoded.n_tokens, model.config.hidden_size,
                                             next(model.parameters()).element_size()) / 1e9 if use_cache else 0.0}
        if device.type == "cuda":
            out[name]["peak_memory_gb"] = torch.cuda.max_memory_allocated(device) / 1e9
        del runner, plan
        if device.type == "cuda":
            torch.cuda.empty_cache()
    out["speedup"] = out["naive"]["step_s"] / out["cached"]["step_s"]
    out["same_choice"] = out["naive"]["removed"] == out["cached"]["removed"]
    out["criterion_difference"] = abs(out["naive"]["criterion_value"] - out["cached"]["criterion_value"])
    return out


def run_cost(step: dict, n_layers: int) -> tuple[float, float]:
    """(a, b): seconds per run (embeddings, final norm, read-out, host copies) and per decoder layer, on the timed set.

    Naive step: L runs of L-1 layers; cached step: L runs of L-1-i layers (i = 0..L-1), L(L-1)/2 in all.
    """
    naive, cached = step["naive"]["step_s"], step["cached"]["step_s"]
    full, half = n_layers * (n_layers - 1), n_layers * (n_layers - 1) / 2
    per_layer = (naive - cached) / (full - half)
    per_run = (naive - full * per_layer) / n_layers
    if per_layer <= 0 or per_run < 0:  # timing noise: no overhead term
        per_run, per_layer = 0.0, naive / full
    return per_run, per_layer


def sweep_seconds(per_run: float, per_layer: float, n_layers: int, cache: bool, evaluation: bool) -> float:
    """Seconds of a full greedy sweep (steps 1..L-1) on one item set, in units of the timed set's costs.

    Calibration (``evaluation=False``): step 0 runs the intact network; step s with n kept layers
    remembers the new network (from the layer removed before: ~n/2 layers) and runs n candidates
    (cached: n(n-1)/2 layer runs; naive: n(n-1)). Evaluation: one run per step, of the layers after
    the removed one when cached (~(n-1)/2 on average), of all n-1 kept layers when not.
    """
    total = per_run + n_layers * per_layer  # step 0: the intact network
    for n in range(n_layers, 1, -1):  # n layers kept before the step's removal
        if evaluation:
            total += per_run + ((n - 1) / 2 if cache else n - 1) * per_layer
        elif cache:
            remember = 0.0 if n == n_layers else per_run + n / 2 * per_layer
            total += remember + n * per_run + n * (n - 1) / 2 * per_layer
        else:
            total += n * (per_run + (n - 1) * per_layer)
    return total


def extrapolate_sweep(step: dict, scoring: dict, model, device: torch.device, n_calibration: int, n_items: int) -> dict:
    """A full sweep with ``n_calibration`` calibration and ``n_items`` evaluation items, cached (as planned) and naive."""
    n_layers, d_model = model.config.num_hidden_layers, model.config.hidden_size
    bytes_per_value = next(model.parameters()).element_size()
    per_run, per_layer = run_cost(step, n_layers)
    padded_per_item = scoring["tokens_padded"] / scoring["n_prompts"]
    tokens = {"calibration": int(n_calibration * padded_per_item), "evaluation": int(n_items * padded_per_item)}
    budget = memory_budget(device)
    plan = plan_prefix_cache(tokens, n_layers, d_model, bytes_per_value, budget)
    scale = {name: count / step["tokens_padded"] for name, count in tokens.items()}
    seconds = {}
    for mode in ("cached", "naive"):
        parts = {name: scale[name] * sweep_seconds(per_run, per_layer, n_layers,
                                                   cache=mode == "cached" and plan[name], evaluation=name == "evaluation")
                 for name in tokens}
        seconds[mode] = {**{f"{name}_s": value for name, value in parts.items()}, "total_s": sum(parts.values()),
                         "minutes": sum(parts.values()) / 60}
    return {
        "n_calibration": n_calibration, "n_evaluation": n_items, "n_steps": n_layers - 1,
        "padded_tokens": tokens, "per_run_s": per_run, "per_layer_s": per_layer, "timed_set_padded_tokens": step["tokens_padded"],
        "memory_budget_gb": budget / 1e9,
        "cache_gb": {name: cache_bytes(n_layers, count, d_model, bytes_per_value) / 1e9 for name, count in tokens.items()},
        "cache_plan": plan, **seconds, "speedup": seconds["naive"]["total_s"] / seconds["cached"]["total_s"],
        "model": "cost = per_run + layers x per_layer, fitted to the timed cached and naive steps, scaled by padded tokens",
    }


# -------------------------------------------------------------------------------- main


def device_slug(device: torch.device) -> str:
    if device.type != "cuda":
        return device.type
    return re.sub(r"[^a-z0-9]+", "-", torch.cuda.get_device_name(device).lower()).strip("-")


def run(args: argparse.Namespace, log: Callable[[str], None] = print) -> dict:
    device = torch.device(args.device or ("cpu" if args.tiny else "cuda"))
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device here: run on a GPU, or with --tiny on CPU")
    shape = TINY if args.tiny else LLAMA2_7B
    dtype = torch.float32 if device.type == "cpu" else torch.bfloat16
    n_prompts = args.n_prompts or (16 if args.tiny else 1000)
    n_calibration = args.n_calibration or (8 if args.tiny else 64)
    median = args.prompt_median or (TINY_PROMPT_MEDIAN if args.tiny else PROMPT_MEDIAN)
    threads = args.threads or (1 if args.tiny else None)
    if threads:  # a loaded CI machine: one thread avoids oversubscription (6x slower matmuls with 2 on 2 busy cores)
        torch.set_num_threads(threads)
    clock = Clock(device)
    started = time.perf_counter()

    sizes = (256, 512) if args.tiny else (4096, 8192, 16384)
    matmul = matmul_rate(device, dtype, sizes, clock, min_seconds=0.05 if args.tiny else 0.5)
    log(f"(a) matmul: {matmul['tflops']:.2f} TFLOP/s ({matmul['dtype']}, n={matmul['best_size']})")

    with clock.time(timing := {}, "s"):
        model, on_device = build_model(shape, device, dtype, args.seed)
    n_params = sum(p.numel() for p in model.parameters())
    n_embedding = model.model.embed_tokens.weight.numel() + model.lm_head.weight.numel()
    log(f"model: {n_params / 1e9:.3f} B parameters, built in {timing['s']:.1f} s on {device} (directly: {on_device})")

    rng = np.random.default_rng(args.seed)
    scoring = measure_scoring(model, random_requests(n_prompts, shape["vocab_size"], rng, median), device, args.token_budget,
                              clock, matmul["tflops"], n_params - n_embedding)
    log(f"(b) scoring: {scoring['tokens_per_s']:.0f} tokens/s, {scoring['items_per_s']:.1f} prompts/s "
        f"({n_prompts} prompts, mean {scoring['tokens_mean']:.0f} tokens)")
    log(f"(c) {scoring['model_tflops_per_s']:.2f} TFLOP/s = {100 * scoring['fraction_of_matmul']:.1f}% of the matmul rate")

    step = measure_greedy_step(model, random_requests(n_calibration, shape["vocab_size"], rng, median), device,
                               args.token_budget, clock, args.seed)
    log(f"(d) greedy step ({step['n_candidates']} candidates, {n_calibration} prompts): cached "
        f"{step['cached']['step_s']:.2f} s, naive {step['naive']['step_s']:.2f} s ({step['speedup']:.2f}x)")
    sweep = extrapolate_sweep(step, scoring, model, device, args.sweep_calibration, args.sweep_items)
    log(f"    full sweep ({args.sweep_calibration} calibration + {args.sweep_items} evaluation items): cached "
        f"{sweep['cached']['minutes']:.1f} min, naive {sweep['naive']['minutes']:.1f} min; cache plan {sweep['cache_plan']}")

    gpu = device.type == "cuda"
    result = {
        "benchmark": "gpu_bench",
        "device": device.type,
        "device_name": torch.cuda.get_device_name(device) if gpu else cpu_model(),
        "tiny": bool(args.tiny),
        "dtype": str(dtype).removeprefix("torch."),
        "model": {"shape": shape, "n_params": n_params, "n_params_non_embedding": n_params - n_embedding, "attn_implementation": model.config._attn_implementation,
                  "init_on_device": on_device, "build_s": timing["s"],
                  "prompt_lengths": {"distribution": "log-normal, clipped", "median": median, "sigma": PROMPT_SIGMA,
                                     "clip": [max(2, int(PROMPT_MIN * median / PROMPT_MEDIAN)),
                                              int(PROMPT_MAX * median / PROMPT_MEDIAN)]}},
        "matmul": matmul,
        "scoring": scoring,
        "pruning_step": step,
        "sweep_extrapolation": sweep,
        "goals": {"fraction_of_matmul": GOAL_FRACTION, "sweep_minutes": GOAL_SWEEP_MINUTES,
                  "applies": "Llama-2-7B shapes on one H200 (not --tiny)"},
        "meets_goals": None if args.tiny or not gpu else {
            "fraction_of_matmul": scoring["fraction_of_matmul"] >= GOAL_FRACTION,
            "sweep_minutes": sweep["cached"]["minutes"] < GOAL_SWEEP_MINUTES},
        "total_s": time.perf_counter() - started,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model(),
        "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "transformers": __import__("transformers").__version__,
        "layercollapse": layercollapse.__version__,
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if gpu:
        result["peak_memory_gb"] = torch.cuda.max_memory_allocated(device) / 1e9
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    result = run(args)
    out = Path(args.out) if args.out else RESULTS / f"gpu_bench_{device_slug(torch.device(result['device']))}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, allow_nan=False, default=float) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
