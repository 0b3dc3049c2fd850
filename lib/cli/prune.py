"""``python -m layercollapse prune``: run one pruning schedule and print its per-step table."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from layercollapse.cli.arguments import (
    add_model_task_arguments,
    add_shots_argument,
    check_model,
    format_frequency,
    non_negative_int,
    note_limit,
    positive_int,
    shots_for,
)
from layercollapse.data.tasks import Item
from layercollapse.pruning.schedules import CRITERIA, SCHEDULES, get_schedule
from layercollapse.pruning.trace import TRACE_KIND, Trace


def calibration_passages(items: Sequence[Item]) -> list[str]:
    """Plain-text passages for the ``lm_loss`` criterion: each item's passage, question and correct answer."""
    return [f"{item.passage}\n{item.question} {item.options[item.gold]}".strip() for item in items]


def read_passages(path: str | Path) -> list[str]:
    """Passages of a text file, separated by blank lines."""
    blocks = Path(path).read_text(encoding="utf-8").split("\n\n")
    return [block.strip() for block in blocks if block.strip()]


def parse_layer_range(text: str) -> list[int]:
    """``"3:10"`` -> [3, ..., 9]; ``"1,4,7"`` -> [1, 4, 7]; anything else: argparse.ArgumentTypeError."""
    try:
        if ":" in text:
            start, stop = text.split(":")
            layers = list(range(int(start), int(stop)))
        else:
            layers = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        layers = []
    if not layers:
        raise argparse.ArgumentTypeError(f"invalid layer range {text!r}: use a range such as 3:10 or a list such as 1,4,7")
    return layers


def format_trace(trace: Trace) -> str:
    """The per-step table: step, removed layer(s), accuracy, mean DM, criterion, option frequency."""
    lines = [f"{'step':>4} {'removed':>8} {'kept':>4} {'acc':>6} {'mean DM':>8} {'criterion':>9}  option frequency"]
    accuracy, mean_dm, frequency = trace.accuracy(), trace.mean_dm(), trace.option_frequency()
    for step in range(trace.n_steps):
        removed = " ".join(str(layer) for layer in trace.removed[step]) or "-"
        lines.append(f"{step:>4} {removed:>8} {trace.n_layers - trace.n_removed[step]:>4} {accuracy[step]:6.3f} "
                     f"{mean_dm[step]:8.3f} {trace.criterion[step]:9.4f}  {format_frequency(frequency[step])}")
    return "\n".join(lines)


def add_prune_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_task_arguments(parser)
    add_shots_argument(parser)
    greedy = [name for name, schedule in SCHEDULES.items() if schedule.greedy]
    parser.add_argument("--schedule", default="iterative", choices=list(SCHEDULES))
    parser.add_argument("--criterion", default="dm", choices=list(CRITERIA),
                        help=f"greedy criterion ({', '.join(greedy)})")
    parser.add_argument("--n-calibration", type=positive_int, default=64, help="calibration items, disjoint from evaluation")
    parser.add_argument("--items-seed", type=non_negative_int, default=0,
                        help="seed of the calibration/evaluation split (--seed seeds random schedules)")
    roles = {"range": "the layers to remove from", "first": "the layers removed first"}
    parser.add_argument("--layers", type=parse_layer_range, default=None,
                        help="; ".join(f"{name}: {roles[schedule.layers]}" for name, schedule in SCHEDULES.items()
                                       if schedule.layers) + "; an index range '3:10' or a list '1,4,7'")
    parser.add_argument("--n-remove", type=non_negative_int, default=None,
                        help="removal steps (default: until one layer is left; checked against the model once loaded)")
    parser.add_argument("--passages", default=None,
                        help="lm_loss: text file of calibration passages separated by blank lines "
                             "(default: the calibration items' question and correct answer)")
    parser.add_argument("--store", default=None,
                        help="results store folder (default: $LAYERCOLLAPSE_STORE, else the per-user cache "
                             "~/.cache/layercollapse/store; profiles' results live in data/, written by `reproduce`)")
    parser.add_argument("--no-cache", action="store_true", help="recompute every subnetwork (no prefix cache)")


def check_prune_arguments(args: argparse.Namespace) -> None:
    """Refuse option combinations that would be ignored or fail late, before any data or model loads."""
    schedule = get_schedule(args.schedule)
    with_layers = [name for name, other in SCHEDULES.items() if other.layers]
    greedy = [name for name, other in SCHEDULES.items() if other.greedy]
    if args.layers is not None and not schedule.layers:
        raise ValueError(f"--layers applies only to --schedule {' or '.join(with_layers)}, not to '{args.schedule}'")
    if args.layers is None and schedule.layers:
        raise ValueError(f"--schedule {args.schedule} needs --layers (an index range such as 3:10 or a list such as 1,4,7"
                         + ("; the Decisive Phase that `diagnose` prints" if schedule.layers == "first" else "") + ")")
    if args.passages is not None and args.criterion != "lm_loss":
        raise ValueError(f"--passages applies only to --criterion lm_loss, not to '{args.criterion}'")
    if args.criterion != "dm" and not schedule.greedy:
        raise ValueError(f"--criterion applies only to --schedule {' or '.join(greedy)}, not to '{args.schedule}'")
    if args.passages is not None and not Path(args.passages).is_file():
        raise FileNotFoundError(f"--passages {args.passages}: no such file")
    check_model(args)


def prune_command(args: argparse.Namespace) -> int:
    """Prune a model with one schedule; print accuracy, mean DM and Option Frequency after every step."""
    check_prune_arguments(args)
    from layercollapse.data.tasks import load_task, split_calibration
    from layercollapse.model.loading import load_model
    from layercollapse.pruning.engine import prune
    from layercollapse.storage.store import Store

    data = load_task(args.task, args.split)
    calibration, evaluation = split_calibration(data, args.n_calibration, args.limit, args.items_seed)
    note_limit(args.limit, len(data) - len(calibration), f"{data.task}/{data.split} left after {len(calibration)} "
               "calibration items")
    shots = shots_for(args, (*calibration, *evaluation), seed=args.items_seed)  # solved examples of neither set
    if args.criterion == "lm_loss":
        calibration = read_passages(args.passages) if args.passages else calibration_passages(calibration)
    model, tokenizer = load_model(args.model, dtype=args.dtype)
    store = Store(args.store)
    print(f"results store: {store.root}")
    print(f"{args.model} on {data.task}/{data.split}: {len(evaluation)} evaluation and {len(calibration)} "
          f"calibration {'passages' if args.criterion == 'lm_loss' else 'items'}, {args.format} format"
          + (f", {len(shots)} shots" if shots else "") + f", schedule {args.schedule}")
    trace = prune(model, tokenizer, evaluation, args.schedule, calibration=calibration, criterion=args.criterion,
                  seed=args.seed, layers=args.layers,
                  n_remove=args.n_remove, format=args.format, task=args.task, split=data.split, store=store,
                  shots=shots, cache=False if args.no_cache else "auto")
    print(format_trace(trace))
    print(f"trace stored in {store.directory(TRACE_KIND) / trace.key} (.json, .parquet, .arrays.parquet)")
    return 0
