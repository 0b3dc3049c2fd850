"""What the commands share: argument types and groups, checks made before any work, and output formatting."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import numpy as np


def _int_at_least(text: str, lowest: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = lowest - 1
    if value < lowest:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what} (an integer >= {lowest})")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (``--limit 0`` or ``-5`` is refused before any model loads)."""
    return _int_at_least(text, 1, "a positive integer")


def positive_float(text: str) -> float:
    """argparse type: a number > 0 (``--minutes 0`` is refused before any work)."""
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0 (seeds, step counts)."""
    return _int_at_least(text, 0, "a non-negative integer")


def split_help() -> str:
    """The help of --split: which split each task defaults to, and the split the committed results use."""
    from layercollapse.data.tasks import TASK_REGISTRY

    others = {}
    for name, spec in TASK_REGISTRY.items():
        if spec.default_split != "validation":
            others.setdefault(spec.default_split, []).append(name)
    exceptions = "".join(f"; {split} for {', '.join(names)}" for split, names in others.items())
    return (f"task split (default: validation{exceptions}); the committed results use --split test where a task "
            "has one (the profiles' eval_split)")


def add_model_task_arguments(parser: argparse.ArgumentParser) -> None:
    """--model, --task, --format, --limit, --seed, --split, --dtype: shared by every command."""
    parser.add_argument("--model", default="smollm2-135m",
                        help="short name, Hub id, local model folder, or a .gguf file (or a folder holding one)")
    parser.add_argument("--task", default="arc_easy", help="task name (or mmlu:<subject>)")
    parser.add_argument("--format", default="letter", choices=["letter", "cloze"])
    parser.add_argument("--split", default=None, help=split_help())
    parser.add_argument("--limit", type=positive_int, default=None,
                        help="number of items (seeded subsample, >= 1; above the task's items: all of them, said so)")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="seed of the item subsample (>= 0)")
    parser.add_argument("--dtype", default=None, choices=["bf16", "fp32", "fp16"],
                        help="weights and activations (default: bf16 on GPUs and CPUs with native bf16, else fp32)")


def add_shots_argument(parser: argparse.ArgumentParser) -> None:
    """--shots K: solved examples prepended to every prompt (letter and cloze format)."""
    parser.add_argument("--shots", type=non_negative_int, default=0,
                        help="K solved examples from the task's few-shot split before every prompt (letter and cloze), "
                             "disjoint from the evaluated items and drawn by --seed (default 0)")


def shots_for(args: argparse.Namespace, items, seed: int | None = None) -> tuple:
    """The solved examples of ``--shots``, disjoint from ``items`` (``tasks.fewshot_examples``; drawn by ``seed``,
    default ``--seed``)."""
    from layercollapse.data.tasks import fewshot_examples

    return fewshot_examples(args.task, args.shots, args.seed if seed is None else seed, exclude=items)


def check_model(args: argparse.Namespace) -> None:
    """Refuse a --model that can name no model (a missing or incomplete folder, a file that is not GGUF, an unknown
    short name) before any data or model loads; a Hub id is checked when it loads."""
    from layercollapse.model.loading import check_model_source

    check_model_source(args.model)


def note_limit(limit: int | None, n_available: int, items_of: str) -> None:
    """Say in one line that ``--limit`` asks for more than the ``n_available`` items of ``items_of`` (all are used)."""
    if limit is not None and limit > n_available:
        print(f"--limit {limit} is more than the {n_available:,} items of {items_of}: using all {n_available:,}")


def format_frequency(frequency: np.ndarray) -> str:
    """'A 0.31 B 0.22 …' for one option-frequency vector."""
    return " ".join(f"{chr(65 + k)} {value:.2f}" for k, value in enumerate(frequency))


def layer_spans(layers: Sequence[int]) -> str:
    """``[0, 1, 2, 5, 7, 8]`` -> ``"0–2, 5, 7–8"``; ``"none"`` for no layers."""
    spans: list[list[int]] = []
    for layer in sorted(layers):
        if spans and layer == spans[-1][1] + 1:
            spans[-1][1] = layer
        else:
            spans.append([layer, layer])
    return ", ".join(str(a) if a == b else f"{a}–{b}" for a, b in spans) or "none"
