"""``python -m layercollapse evaluate`` and ``diagnose``: score one model on one task, at its output or layer by layer."""

from __future__ import annotations

import argparse
import time

import numpy as np
from layercollapse.cli.arguments import (
    add_model_task_arguments,
    add_shots_argument,
    check_model,
    format_frequency,
    layer_spans,
    note_limit,
    positive_int,
    shots_for,
)


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_task_arguments(parser)
    add_shots_argument(parser)
    parser.add_argument("--layerwise", action="store_true", help="also read out every layer (logit lens)")


def load_items_and_model(args: argparse.Namespace):
    """What ``evaluate`` and ``diagnose`` score: the arguments checked before any work, then (task data, items, solved
    examples, gold int64 [n_items], model, tokenizer)."""
    from layercollapse.data.tasks import load_task, subsample
    from layercollapse.model.loading import load_model

    check_model(args)
    data = load_task(args.task, args.split)
    note_limit(args.limit, len(data), f"{data.task}/{data.split}")
    items = subsample(data, args.limit, args.seed)
    shots = shots_for(args, items)
    gold = np.array([item.gold for item in items])
    model, tokenizer = load_model(args.model, dtype=args.dtype)
    return data, items, shots, gold, model, tokenizer


def evaluate(args: argparse.Namespace) -> int:
    """Print accuracy, mean Decision Margin and Option Frequency (per layer with --layerwise)."""
    from layercollapse.data.tasks import TASK_REGISTRY
    from layercollapse.measures import metrics
    from layercollapse.readout.lens import layerwise_scores
    from layercollapse.readout.scoring import option_lengths, score

    data, items, shots, gold, model, tokenizer = load_items_and_model(args)
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


#: Items timed through the intact network before ``diagnose`` starts, to estimate its time.
RATE_ITEMS = 2
#: The "transition without it" column where the intact network has no transition (nothing to prevent).
NO_TRANSITION = "—"
DIAGNOSE_COST = ("Cost: removing each of the model's L layers alone reruns the layers after it, so the run makes "
                 "about items × L²/2 decoder-layer passes over one item (items × L(L+1)/2 with the intact readout); "
                 "the main model (28 layers) took 12 min 18 s for 60 zero-shot items on 2 cores, and few-shot prompts "
                 "cost more per pass. Before the work starts it prints its estimated time, from a pass over "
                 f"{RATE_ITEMS} items timed on this machine.")


def add_diagnose_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = DIAGNOSE_COST
    add_model_task_arguments(parser)
    add_shots_argument(parser)
    parser.add_argument("--n-bootstrap", type=positive_int, default=1000,
                        help="item-bootstrap resamples of the accuracy band and the transition interval")


def diagnose_passes(n_items: int, n_layers: int) -> int:
    """Decoder-layer passes over one item that ``diagnose`` makes: the intact readout (L) and, for each layer l removed
    alone, the L - l - 1 layers after it, i.e. items × L(L+1)/2."""
    return n_items * n_layers * (n_layers + 1) // 2


def layer_pass_seconds(model, tokenizer, items, format: str, task: str, shots) -> float:
    """Seconds one decoder layer takes over one item here, measured: the intact network over the first
    :data:`RATE_ITEMS` items (their time / (items × layers))."""
    from layercollapse.model.layers import n_layers
    from layercollapse.readout.scoring import score

    timed = list(items[:RATE_ITEMS])
    start = time.perf_counter()
    score(model, tokenizer, timed, format, task=task, shots=shots, progress=False)
    return (time.perf_counter() - start) / (len(timed) * n_layers(model))


def estimate_line(n_items: int, n_layers: int, seconds_per_pass: float) -> str:
    """What ``diagnose`` will cost: its decoder-layer passes (:func:`diagnose_passes`) at ``seconds_per_pass``."""
    from layercollapse.study.audit import duration

    passes = diagnose_passes(n_items, n_layers)
    return (f"estimated time: about {duration(passes * seconds_per_pass)} ({n_items} items × {n_layers}·"
            f"{n_layers + 1}/2 = {passes:,} decoder-layer passes over one item, at {seconds_per_pass * 1000:.0f} ms "
            f"each as timed on {min(n_items, RATE_ITEMS)} item(s) here; a rough guide)")


def transition_without(outcome: str, transition_layer, intact_has_transition: bool) -> str:
    """The "transition without it" column of one removed layer: :data:`NO_TRANSITION` when the intact network has no
    transition (there is nothing to prevent or move), else the outcome and, unless prevented, where it now is."""
    if not intact_has_transition:
        return NO_TRANSITION
    return "prevented" if outcome == "prevented" else f"{outcome} (layer {transition_layer})"


def cost_rows(costs, band, dm: np.ndarray, intact_has_transition: bool) -> list[str]:
    """One line per layer of ``single_layer_costs``' table: the intact readout at its depth (accuracy, ``band``'s
    interval, mean DM ``dm``), its phase, and what removing it alone costs."""
    rows = []
    for row in costs.itertuples():
        depth = row.layer + 1
        rows.append(f"{row.layer:>5} {band.accuracy[depth]:6.3f} [{band.low[depth]:.3f}, {band.high[depth]:.3f}] "
                    f"{dm[depth]:8.3f}  {row.phase:<8} {row.accuracy:11.3f} "
                    f"{_signed(row.accuracy_drop, row.accuracy_drop_low, row.accuracy_drop_high):>22} "
                    f"{_signed(row.dm_drop, row.dm_drop_low, row.dm_drop_high):>22}  "
                    f"{transition_without(row.outcome, row.transition_layer, intact_has_transition)}"
                    + ("  <- the transition needs it" if row.needed and intact_has_transition else ""))
    return rows


def diagnose(args: argparse.Namespace) -> int:
    """Print the intact readout's transition and phases, and what removing each layer alone costs, measured (about
    items × L²/2 decoder-layer passes: its estimated time is printed first)."""
    from layercollapse.claims.pruned_transitions import single_layer_costs
    from layercollapse.measures import metrics
    from layercollapse.measures.phases import Readout, phases_from_readout
    from layercollapse.model.layers import n_layers
    from layercollapse.pruning.engine import single_layer_removals
    from layercollapse.site.tables import transition_text

    data, items, shots, gold, model, tokenizer = load_items_and_model(args)
    seconds_per_pass = layer_pass_seconds(model, tokenizer, items, args.format, args.task, shots)
    print(estimate_line(len(items), n_layers(model), seconds_per_pass), flush=True)
    removals = single_layer_removals(model, tokenizer, items, args.format, task=args.task, shots=shots)
    readout = Readout(removals["intact_readout"], gold, {"model": args.model, "task": data.task})
    phases = phases_from_readout(readout, n_resamples=args.n_bootstrap, seed=args.seed)
    costs = single_layer_costs(removals, gold, phases, n_resamples=args.n_bootstrap, seed=args.seed)
    band, dm = phases.transition, readout.frame()["mean_dm"].to_numpy()
    print(f"{args.model} on {data.task}/{data.split}, {len(items)} items, {args.format} format, "
          f"{len(shots)} shots, {phases.n_layers} layers, logit-lens readout")
    print(f"chance (best constant answer): {phases.chance:.3f}; transition layer: "
          f"{transition_text(phases.layer, phases.layer_ci)} (found in {band.found_fraction:.0%} of item resamples)")
    print(f"intact accuracy {metrics.accuracy(removals['intact'], gold):.3f}. Each layer removed alone, measured on the "
          f"same items (drops: intact - without it, {band.confidence:.0%} paired item bootstrap):")
    print(f"{'layer':>5} {'acc':>6} {f'{band.confidence:.0%} band':>15} {'mean DM':>8}  {'phase':<8} "
          f"{'acc without':>11} {'acc drop [95% CI]':>22} {'DM drop [95% CI]':>22}  transition without it")
    print(f"{'emb':>5} {band.accuracy[0]:6.3f} [{band.low[0]:.3f}, {band.high[0]:.3f}] {dm[0]:8.3f}  embeddings")
    for line in cost_rows(costs, band, dm, phases.layer is not None):
        print(line)
    print(f"Silent Phase:   layers {layer_spans(phases.silent)} ({len(phases.silent)})")
    print(f"Decisive Phase: layers {layer_spans(phases.decisive)} ({len(phases.decisive)})")
    if phases.layer is None:
        print("No transition: no layer reads above chance to the end, so there is no Decisive Phase and no transition "
              "to protect (try more items with --limit, or the other --format).")
    else:
        print(f"The transition needs: layers {layer_spans(costs.loc[costs['needed'], 'layer'])} (removed alone, the "
              "transition is prevented, moved or weakened).")
    free = costs.loc[costs["accuracy_drop_low"] <= 0, "layer"]
    print(f"No significant accuracy cost when removed alone: layers {layer_spans(free)} ({len(free)}).")
    print("Single-layer costs do not add up: layers that each cost little alone can collapse the model together (in "
          "the committed traces of qwen2.5-coder-1.5b on ARC-Easy, removing its six Decisive layers does; see the "
          "dose-response in the site's chapter 'Decision dynamics under pruning'). To remove k layers, run "
          "`python -m layercollapse prune --schedule iterative` and read the pruned network's accuracy at step k.")
    return 0


def _signed(estimate: float, low: float, high: float) -> str:
    return f"{estimate:+.3f} [{low:+.3f}, {high:+.3f}]"
