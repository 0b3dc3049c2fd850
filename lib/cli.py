"""Command line: ``python -m layercollapse <command>``.

Commands register themselves in :data:`COMMANDS` through :func:`command`, each
with a function that adds its arguments and one that runs it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

import numpy as np

COMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {}


def command(name: str, add_arguments: Callable[[argparse.ArgumentParser], None]):
    """Decorator registering ``run(args) -> exit code`` as a subcommand."""

    def register(run: Callable[[argparse.Namespace], int]):
        COMMANDS[name] = (add_arguments, run)
        return run

    return register


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


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0 (seeds, step counts)."""
    return _int_at_least(text, 0, "a non-negative integer")


def add_model_task_arguments(parser: argparse.ArgumentParser) -> None:
    """--model, --task, --format, --limit, --seed, --split, --dtype: shared by every command."""
    parser.add_argument("--model", default="smollm2-135m", help="short name, Hub id or local folder")
    parser.add_argument("--task", default="arc_easy", help="task name (or mmlu:<subject>)")
    parser.add_argument("--format", default="letter", choices=["letter", "cloze"])
    parser.add_argument("--split", default=None, help="task split (default: the task's evaluation split)")
    parser.add_argument("--limit", type=positive_int, default=None, help="number of items (seeded subsample, >= 1)")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="seed of the item subsample (>= 0)")
    parser.add_argument("--dtype", default=None, choices=["bf16", "fp32", "fp16"],
                        help="weights and activations (default: bf16 on GPUs and CPUs with native bf16, else fp32)")


def add_shots_argument(parser: argparse.ArgumentParser) -> None:
    """--shots K: solved examples prepended to letter-format prompts."""
    parser.add_argument("--shots", type=non_negative_int, default=0,
                        help="letter format: K solved examples from the task's few-shot split, disjoint from the "
                             "evaluated items and drawn by --seed (default 0)")


def shots_for(args: argparse.Namespace, items) -> tuple:
    """The solved examples of ``--shots`` for ``items`` (``tasks.fewshot_examples``)."""
    from .tasks import fewshot_examples

    return fewshot_examples(args.task, args.shots, args.seed, exclude=items)


def check_shots(args: argparse.Namespace) -> None:
    """Refuse --shots with the cloze format before any data or model loads."""
    if args.shots and args.format != "letter":
        raise ValueError(f"--shots applies only to --format letter, not to '{args.format}' "
                         "(cloze prompts are zero-shot, as lm-evaluation-harness scores them)")


def format_frequency(frequency: np.ndarray) -> str:
    """'A 0.31 B 0.22 …' for one option-frequency vector."""
    return " ".join(f"{chr(65 + k)} {value:.2f}" for k, value in enumerate(frequency))


def _add_evaluate(parser: argparse.ArgumentParser) -> None:
    add_model_task_arguments(parser)
    add_shots_argument(parser)
    parser.add_argument("--layerwise", action="store_true", help="also read out every layer (logit lens)")


@command("evaluate", _add_evaluate)
def evaluate(args: argparse.Namespace) -> int:
    """Print accuracy, mean Decision Margin and Option Frequency (per layer with --layerwise)."""
    from . import metrics
    from .lens import layerwise_scores
    from .models import load_model
    from .scoring import option_lengths, score
    from .tasks import TASK_REGISTRY, load_task, subsample

    check_shots(args)
    data = load_task(args.task, args.split)
    items = subsample(data.items, args.limit, args.seed)
    shots = shots_for(args, items)
    gold = np.array([item.gold for item in items])
    model, tokenizer = load_model(args.model, dtype=args.dtype)
    print(f"{args.model} on {data.task}/{data.split} ({data.source}), {len(items)} items, {args.format} format"
          + (f", {len(shots)} shots" if shots else ""))
    if args.format == "cloze" and not TASK_REGISTRY[data.task.partition(":")[0]].harness_cloze:
        print(f"note: lm-evaluation-harness has no cloze variant of {data.task}; this uses a generic "
              "'Question: …\nAnswer:' template, so the scores are not comparable with a harness cloze task")
    if args.layerwise:
        scores = layerwise_scores(model, tokenizer, items, args.format, task=args.task, shots=shots)
        summary = metrics.summarize(scores, gold)
        print(f"{'layer':>5} {'acc':>6} {'mean DM':>8} {'OF entropy':>10}  option frequency")
        for depth in range(scores.shape[0]):
            name = "emb" if depth == 0 else str(depth - 1)
            print(f"{name:>5} {summary['accuracy'][depth]:6.3f} {summary['mean_dm'][depth]:8.3f} "
                  f"{summary['of_entropy'][depth]:10.3f}  {format_frequency(summary['option_frequency'][depth])}")
        return 0
    scores = score(model, tokenizer, items, args.format, task=args.task, shots=shots)
    summary = metrics.summarize(scores, gold)
    print(f"accuracy {summary['accuracy']:.4f}   mean DM {summary['mean_dm']:.4f}   "
          f"OF entropy {summary['of_entropy']:.3f} bits")
    if args.format == "cloze":
        normed = metrics.length_normalized(scores, option_lengths(items))
        print(f"acc_norm {metrics.accuracy(normed, gold):.4f}   mean DM (norm) {metrics.mean_decision_margin(normed, gold):.4f}")
    print(f"option frequency: {format_frequency(summary['option_frequency'])}")
    print(f"gold frequency:   {format_frequency(metrics.gold_frequency(gold, scores.shape[-1]))}")
    return 0


def layer_spans(layers: Sequence[int]) -> str:
    """``[0, 1, 2, 5, 7, 8]`` -> ``"0–2, 5, 7–8"``; ``"none"`` for no layers."""
    spans: list[list[int]] = []
    for layer in sorted(layers):
        if spans and layer == spans[-1][1] + 1:
            spans[-1][1] = layer
        else:
            spans.append([layer, layer])
    return ", ".join(str(a) if a == b else f"{a}–{b}" for a, b in spans) or "none"


def _add_diagnose(parser: argparse.ArgumentParser) -> None:
    add_model_task_arguments(parser)
    add_shots_argument(parser)
    parser.add_argument("--n-bootstrap", type=positive_int, default=1000,
                        help="item-bootstrap resamples of the accuracy band and the transition interval")


@command("diagnose", _add_diagnose)
def diagnose(args: argparse.Namespace) -> int:
    """Print the intact readout's transition layer, its Silent and Decisive layers, and the layers safe to prune."""
    from .experiments import Readout, phases_from_readout
    from .lens import layerwise_scores
    from .models import load_model
    from .tables import transition_text
    from .tasks import load_task, subsample

    check_shots(args)
    data = load_task(args.task, args.split)
    items = subsample(data.items, args.limit, args.seed)
    shots = shots_for(args, items)
    model, tokenizer = load_model(args.model, dtype=args.dtype)
    scores = layerwise_scores(model, tokenizer, items, args.format, task=args.task, shots=shots)
    readout = Readout(scores, np.array([item.gold for item in items]), {"model": args.model, "task": data.task})
    phases = phases_from_readout(readout, n_resamples=args.n_bootstrap, seed=args.seed)
    band, dm = phases.transition, readout.frame()["mean_dm"].to_numpy()
    print(f"{args.model} on {data.task}/{data.split}, {len(items)} items, {args.format} format, "
          f"{len(shots)} shots, {phases.n_layers} layers, logit-lens readout")
    print(f"chance (best constant answer): {phases.chance:.3f}; transition layer: "
          f"{transition_text(phases.layer, phases.layer_ci)} (found in {band.found_fraction:.0%} of item resamples)")
    print(f"{'layer':>5} {'acc':>6} {f'{band.confidence:.0%} band':>15} {'mean DM':>8}  phase")
    for depth in range(scores.shape[0]):
        phase = "embeddings" if depth == 0 else "Decisive" if depth - 1 in phases.decisive else "Silent"
        name = "emb" if depth == 0 else str(depth - 1)
        print(f"{name:>5} {band.accuracy[depth]:6.3f} [{band.low[depth]:.3f}, {band.high[depth]:.3f}] "
              f"{dm[depth]:8.3f}  {phase}")
    print(f"Silent Phase:   layers {layer_spans(phases.silent)} ({len(phases.silent)})")
    print(f"Decisive Phase: layers {layer_spans(phases.decisive)} ({len(phases.decisive)})")
    if phases.layer is None:
        print("safe to prune: none identified (no layer reads above chance, so the readout has no Decisive Phase; "
              "try more items with --limit, or the other --format)")
    else:
        print(f"safe to prune by this diagnostic: the Decisive Phase, layers {layer_spans(phases.decisive)} "
              "(the paper's account, claims C4/C5: removing Silent-Phase layers prevents the transition)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every registered command."""
    _import_command_modules()
    parser = argparse.ArgumentParser(prog="layercollapse", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name, (add_arguments, run) in COMMANDS.items():
        sub = subparsers.add_parser(name, help=(run.__doc__ or "").splitlines()[0])
        add_arguments(sub)
        sub.set_defaults(run=run)
    return parser


def _import_command_modules() -> None:
    """Modules that register further commands (pruning, reproduce, render)."""
    import importlib

    for module in ("pruning_cli", "reproduce"):
        try:
            importlib.import_module(f"{__package__}.{module}")
        except ModuleNotFoundError as error:
            if error.name != f"{__package__}.{module}":
                raise


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m layercollapse`` and the ``layercollapse`` script."""
    from .errors import friendly_errors

    args = build_parser().parse_args(argv)
    with friendly_errors():
        return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
