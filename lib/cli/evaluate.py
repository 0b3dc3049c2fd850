"""``python -m layercollapse evaluate`` and ``diagnose``: score one model on one task, at its output or layer by layer."""

from __future__ import annotations

import argparse

import numpy as np
from layercollapse.cli.arguments import (
    add_model_task_arguments,
    add_shots_argument,
    check_shots,
    format_frequency,
    layer_spans,
    positive_int,
    shots_for,
)


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_task_arguments(parser)
    add_shots_argument(parser)
    parser.add_argument("--layerwise", action="store_true", help="also read out every layer (logit lens)")


def evaluate(args: argparse.Namespace) -> int:
    """Print accuracy, mean Decision Margin and Option Frequency (per layer with --layerwise)."""
    from layercollapse.data.tasks import TASK_REGISTRY, load_task, subsample
    from layercollapse.measures import metrics
    from layercollapse.model.loading import load_model
    from layercollapse.readout.lens import layerwise_scores
    from layercollapse.readout.scoring import option_lengths, score

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


def add_diagnose_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_task_arguments(parser)
    add_shots_argument(parser)
    parser.add_argument("--n-bootstrap", type=positive_int, default=1000,
                        help="item-bootstrap resamples of the accuracy band and the transition interval")


def diagnose(args: argparse.Namespace) -> int:
    """Print the intact readout's transition layer, its Silent and Decisive layers, and the layers safe to prune."""
    from layercollapse.data.tasks import load_task, subsample
    from layercollapse.model.loading import load_model
    from layercollapse.readout.lens import layerwise_scores
    from layercollapse.site.tables import transition_text
    from layercollapse.study.experiments import Readout, phases_from_readout

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
