"""Decision dynamics under pruning: the readout of every pruned network, its transition, and the
verdicts on the mechanism (C5b) and on the prediction it makes (P1).

Inputs are ``pruning.Trace`` objects run with ``readout=True`` (``Trace.readout_at``) and the intact
network's ``experiments.Phases``. The transition of a pruned network is located by the rule used for
the intact one (``experiments.phases_from_readout`` on its own readout rows: chance = accuracy of the
best constant answer) and reported as the *original* index of its layer.
Rules, fixed before any data is seen (intervals: 95%):

- **A pruned network keeps the transition** when its readout has a transition layer and its final
  accuracy is not significantly below the intact network's (paired BCa item bootstrap of intact -
  pruned final accuracy: the interval's lower bound is at or below 0). It *loses* it otherwise.
- **C5b, the mechanism.** Phase-targeted traces (k = 1 .. K random layers removed inside one phase,
  one trace per seed): at each k, the share of seeds whose pruned network keeps the transition, per
  phase; one-sided Fisher exact test (Silent keeps it less often than Decisive), Holm over k.
  Supported: at some k the test rejects (Holm-adjusted p < ``ALPHA``) and at least half of the
  Decisive-pruned networks keep the transition at that k. Not supported: no k rejects and, at every
  k, the Silent share is at least 1/2 or at least the Decisive share. Otherwise inconclusive, and
  when the intact network has no transition (no Silent Phase to prune).
- **P1, the intact readout predicts the collapse.** Along Iterative Pruning the predicted collapse
  step is the first step that removes a layer of the intact network's Silent Phase; the observed one
  is the trace's collapse point (``claims.collapse.locate_collapse``, with its item-bootstrap step
  interval). Statistic: observed - predicted (steps). Supported: both exist and the predicted step
  lies inside the observed step's interval. Not supported: both exist and it lies outside.
  Inconclusive: no transition in the intact network, no collapse, or the pruner never removes a
  Silent-Phase layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from layercollapse.claims.collapse import locate_collapse
from layercollapse.claims.transition import ALPHA, depth_table
from layercollapse.claims.verdicts import Verdict, verdict_rule
from layercollapse.measures import metrics, stats
from layercollapse.study.experiments import Readout, phases_from_readout
from scipy.stats import binomtest, fisher_exact

__all__ = [
    "PrunedTransition",
    "pruned_transition",
    "transitions_along",
    "dynamics_table",
    "seed_mean_dynamics",
    "seed_transitions",
    "retention_table",
    "predicted_collapse_step",
    "verdict_c5b",
    "verdict_p1",
]


def _phase_name(layer: int, phases) -> str:
    if layer < 0:
        return "embeddings"
    return "Decisive" if phases.layer is not None and layer >= phases.layer else "Silent"


@dataclass(frozen=True)
class PrunedTransition:
    """The transition of one pruned network (one step of a trace).

    Attributes:
        step: trace step; removed: every layer removed up to it (original indices).
        layers: original layers read, -1 (embeddings) first.
        result: ``stats.TransitionResult`` over the readout rows (``index`` = readout row).
        layer, layer_ci: original index of the transition layer and its bootstrap interval, or None.
        dm_rising: mean DM after the transition exceeds mean DM before it (as ``experiments.Phases``).
        final_accuracy: accuracy of the pruned network's output (fraction).
        drop: intact - pruned final accuracy, paired item bootstrap (``stats.Interval``).
    """

    step: int
    removed: tuple[int, ...]
    layers: tuple[int, ...]
    result: stats.TransitionResult
    layer: int | None
    layer_ci: tuple[int, int] | None
    dm_rising: bool
    final_accuracy: float
    drop: stats.Interval

    @property
    def keeps_transition(self) -> bool:
        """A transition exists and the final accuracy is not significantly below the intact network's."""
        return self.layer is not None and self.drop.low <= 0


def pruned_transition(trace, step: int, confidence: float = 0.95, n_resamples: int = 1000,
                      seed: int = 0) -> PrunedTransition:
    """Transition of the network pruned at ``step`` (``trace`` run with ``readout=True``), located by the
    intact network's rule (``experiments.phases_from_readout`` on the pruned network's own readout)."""
    layers, scores = trace.readout_at(step)  # [n_kept + 1, n_items, n_options]
    kept = layers[1:]
    phases = phases_from_readout(Readout(scores, trace.gold, trace.spec), confidence, n_resamples, seed)
    layer = None if phases.layer is None else kept[phases.layer]  # position among kept -> original index
    layer_ci = None if phases.layer_ci is None else (kept[phases.layer_ci[0]], kept[phases.layer_ci[1]])
    intact = metrics.correct(trace.scores[0], trace.gold)
    final = metrics.correct(scores[-1], trace.gold)
    drop = stats.paired_bootstrap_ci(intact, final, confidence=confidence, n_resamples=n_resamples, seed=seed)
    removed = tuple(int(i) for i in np.flatnonzero(~trace.kept[step]))
    return PrunedTransition(step, removed, layers, phases.transition, layer, layer_ci, phases.dm_rising,
                            float(final.mean()), drop)


def transitions_along(trace, phases=None, confidence: float = 0.95, n_resamples: int = 1000,
                      seed: int = 0) -> pd.DataFrame:
    """One row per step: step, n_removed, removed_now (layers removed at the step), removed_phase (their phase
    in the intact network), transition_layer (original index; NaN: none), transition_depth (its readout row:
    depth among the remaining layers, as in :func:`dynamics_table`), layer_low/high, transition_share
    (share of resamples with one), dm_rising, final_accuracy, drop (intact - final) with drop_low/high, keeps_transition,
    schedule, seed, model, task."""
    rows = []
    for step in range(trace.n_steps):
        found = pruned_transition(trace, step, confidence, n_resamples, seed)
        now = trace.removed[step]
        rows.append({"step": step, "n_removed": len(found.removed), "removed_now": " ".join(map(str, now)),
                     "removed_phase": ", ".join(sorted({_phase_name(layer, phases) for layer in now}))
                     if phases is not None and now else "",
                     "transition_layer": found.layer,
                     "transition_depth": None if found.layer is None else found.layers.index(found.layer),
                     "layer_low": found.layer_ci[0] if found.layer_ci else None,
                     "layer_high": found.layer_ci[1] if found.layer_ci else None,
                     "transition_share": found.result.found_fraction, "dm_rising": found.dm_rising,
                     "final_accuracy": found.final_accuracy,
                     "drop": found.drop.estimate, "drop_low": found.drop.low, "drop_high": found.drop.high,
                     "keeps_transition": found.keeps_transition})
    table = pd.DataFrame(rows)
    for name in ("transition_layer", "transition_depth", "layer_low", "layer_high"):
        table[name] = table[name].astype("Int64")
    table["schedule"], table["seed"] = trace.schedule, trace.seed
    table["model"], table["task"] = trace.spec.get("model"), trace.spec.get("task")
    return table


def dynamics_table(trace, phases=None, n_resamples: int = 1000, seed: int = 0,
                   confidence: float = 0.95) -> pd.DataFrame:
    """The readout along a trace, tidy: one row per (step, layer read).

    Returns:
        step, n_removed, layer (original index, -1 = embeddings), depth (0 = embeddings, i = the i-th
        remaining layer), relative_depth (depth / remaining layers), phase (of the layer in the intact
        network, when ``phases`` is given), then ``depth_table``'s columns (accuracy, mean DM, max OF,
        ... with item-bootstrap intervals), schedule, seed, model, task.
    """
    frames = []
    for step in range(trace.n_steps):
        layers, scores = trace.readout_at(step)
        table = depth_table(scores, trace.gold, n_resamples, seed, confidence).drop(columns="row")
        n_kept = len(layers) - 1
        table.insert(0, "step", step)
        table.insert(1, "n_removed", trace.n_layers - n_kept)
        table.insert(2, "layer", np.array(layers))
        table.insert(3, "depth", np.arange(n_kept + 1))
        table.insert(4, "relative_depth", np.arange(n_kept + 1) / n_kept)
        if phases is not None:
            table.insert(5, "phase", [_phase_name(layer, phases) for layer in layers])
        frames.append(table)
    table = pd.concat(frames, ignore_index=True)
    table["schedule"], table["seed"] = trace.schedule, trace.seed
    table["model"], table["task"] = trace.spec.get("model"), trace.spec.get("task")
    return table


def seed_mean_dynamics(traces: Sequence) -> pd.DataFrame:
    """Seed means of the readout of phase-targeted traces: one row per (k, depth among remaining layers).

    Seeds remove different layers, so rows are matched by depth, not by original layer.
    Returns: k, depth, accuracy, mean_dm, max_of (means over seeds), n_seeds, model, task.
    """
    rows = []
    for step in range(min(trace.n_steps for trace in traces)):
        per_seed = []
        for trace in traces:
            _, scores = trace.readout_at(step)
            frequency = metrics.option_frequency(scores)  # [n_kept + 1, n_options]
            per_seed.append(np.stack([metrics.accuracy(scores, trace.gold),
                                      metrics.mean_decision_margin(scores, trace.gold), frequency.max(axis=1)]))
        mean = np.mean(per_seed, axis=0)  # [3, n_kept + 1]
        rows += [{"k": step, "depth": depth, "accuracy": mean[0, depth], "mean_dm": mean[1, depth],
                  "max_of": mean[2, depth]} for depth in range(mean.shape[1])]
    table = pd.DataFrame(rows)
    table["n_seeds"], table["model"], table["task"] = len(traces), traces[0].spec.get("model"), traces[0].spec.get("task")
    return table


def seed_transitions(traces: Sequence, phases=None, confidence: float = 0.95, n_resamples: int = 1000,
                     seed: int = 0) -> pd.DataFrame:
    """Per k (step) of phase-targeted traces: n_seeds, share_found (seeds whose pruned network has a transition),
    share_kept (that keep it, :attr:`PrunedTransition.keeps_transition`), depth_mean / depth_min / depth_max
    (transition depth among the remaining layers, over seeds that have one; NaN: none), transition_depth
    (depth_mean rounded: the row a plot marks), model, task."""
    table = pd.concat([transitions_along(trace, phases, confidence, n_resamples, seed) for trace in traces])
    depth = table["transition_depth"].astype("float64")
    grouped = table.assign(found=depth.notna(), depth=depth).groupby("step")
    summary = pd.DataFrame({"n_seeds": grouped.size(), "share_found": grouped["found"].mean(),
                            "share_kept": grouped["keeps_transition"].mean(), "depth_mean": grouped["depth"].mean(),
                            "depth_min": grouped["depth"].min(), "depth_max": grouped["depth"].max()})
    summary = summary.rename_axis("k").reset_index()
    summary["transition_depth"] = summary["depth_mean"].round().astype("Int64")
    summary["model"], summary["task"] = traces[0].spec.get("model"), traces[0].spec.get("task")
    return summary


def retention_table(silent: Sequence, decisive: Sequence, confidence: float = 0.95, n_resamples: int = 1000,
                    seed: int = 0, alpha: float = ALPHA) -> pd.DataFrame:
    """Per k >= 1: how many Silent- and Decisive-pruned networks keep the transition, and the test of C5b.

    Returns:
        k, kept_silent, n_silent, share_silent (+ share_silent_low/high, Clopper-Pearson), the same for
        decisive, p (one-sided Fisher exact: Silent keeps it less often), p_holm, reject.
    """
    columns = ["k"] + [column for name in ("silent", "decisive")
                       for column in (f"kept_{name}", f"n_{name}", f"share_{name}", f"share_{name}_low",
                                      f"share_{name}_high")]
    if not silent or not decisive:  # a phase without layers: nothing to compare
        return pd.DataFrame({column: pd.Series(dtype=float) for column in (*columns, "p", "reject", "p_holm")})
    n_steps = min(trace.n_steps for trace in (*silent, *decisive))
    rows = []
    for k in range(1, n_steps):
        row = {"k": k}
        for name, traces in (("silent", silent), ("decisive", decisive)):
            kept = sum(pruned_transition(trace, k, confidence, n_resamples, seed).keeps_transition for trace in traces)
            interval = binomtest(kept, len(traces)).proportion_ci(confidence, method="exact")
            row |= {f"kept_{name}": kept, f"n_{name}": len(traces), f"share_{name}": kept / len(traces),
                    f"share_{name}_low": interval.low, f"share_{name}_high": interval.high}
        table = [[row["kept_silent"], row["n_silent"] - row["kept_silent"]],
                 [row["kept_decisive"], row["n_decisive"] - row["kept_decisive"]]]
        row["p"] = float(fisher_exact(table, alternative="less").pvalue)
        rows.append(row)
    frame = pd.DataFrame(rows)
    if len(frame):
        frame["reject"], frame["p_holm"] = stats.holm(frame["p"].to_numpy(), alpha)
    return frame


@verdict_rule
def verdict_c5b(silent: Sequence, decisive: Sequence, phases, confidence: float = 0.95, n_resamples: int = 1000,
                seed: int = 0, alpha: float = ALPHA, table: pd.DataFrame | None = None) -> Verdict:
    """C5b: Silent-pruned networks lose the transition, Decisive-pruned ones keep it (rule: module docstring).

    Args:
        table: ``retention_table(silent, decisive)``; computed here when None.
    """
    statistic = "share of Silent-pruned networks that keep the transition"
    if phases.layer is None or not silent or not decisive:
        return Verdict("C5b", "inconclusive", statistic, None, n=0,
                       text="The main model has no transition (or no layers in one phase), so there is no phase "
                            "to prune and C5b cannot be tested.")
    table = retention_table(silent, decisive, confidence, n_resamples, seed, alpha) if table is None else table
    if not len(table):
        return Verdict("C5b", "inconclusive", statistic, None, n=0, text="The traces remove no layer.")
    deciding = table[table["reject"] & (table["share_decisive"] >= 0.5)]
    if len(deciding):
        status, row = "supported", deciding.iloc[0]
    else:
        holds = ((table["share_silent"] >= 0.5) | (table["share_silent"] >= table["share_decisive"])).all()
        status, row = ("not supported" if holds else "inconclusive"), table.iloc[-1]
    model = silent[0].spec.get("model")
    text = (f"{model}, k = {int(row['k'])} random layers removed inside a phase: the pruned network keeps a "
            f"transition in {int(row['kept_silent'])} of {int(row['n_silent'])} Silent-Phase seeds and "
            f"{int(row['kept_decisive'])} of {int(row['n_decisive'])} Decisive-Phase seeds (one-sided Fisher "
            f"exact test, Holm over k = 1..{int(table['k'].max())}: p = {row['p_holm']:.3g}). A network keeps the "
            f"transition when its own readout has one and its final accuracy is not significantly below the "
            f"intact network's.")
    return Verdict("C5b", status, statistic, float(row["share_silent"]), text,
                   ci=(float(row["share_silent_low"]), float(row["share_silent_high"])), n=int(row["n_silent"]),
                   p=float(row["p_holm"]))


def predicted_collapse_step(trace, phases) -> int | None:
    """First step of ``trace`` that removes a layer of the intact network's Silent Phase, or None."""
    silent = set(phases.silent) if phases.layer is not None else set()
    return next((step for step, removed in enumerate(trace.removed) if silent & set(removed)), None)


@verdict_rule
def verdict_p1(trace, phases, n_resamples: int = 1000, seed: int = 0) -> Verdict:
    """P1: along Iterative Pruning, the collapse comes when the first Silent-Phase layer goes (rule: module docstring)."""
    statistic = "observed - predicted collapse step"
    model = trace.spec.get("model")
    collapse = locate_collapse(trace, metrics.chance_accuracy(trace.gold, trace.scores.shape[-1]), n_resamples, seed)
    predicted = predicted_collapse_step(trace, phases) if phases.layer is not None else None
    n_items = trace.scores.shape[1]
    if phases.layer is None or predicted is None or collapse.step is None:
        why = ("its intact readout has no transition" if phases.layer is None else
               "the pruner never removes a Silent-Phase layer" if predicted is None else collapse.describe())
        return Verdict("P1", "inconclusive", statistic, None, n=n_items,
                       text=f"{model}: no prediction can be checked, because {why}")
    low, high = collapse.step_ci
    status = "supported" if low <= predicted <= high else "not supported"
    first = sorted(set(trace.removed[predicted]) & set(phases.silent))
    text = (f"{model}, Iterative Pruning: the first Silent-Phase layer of the intact network (layer "
            f"{', '.join(map(str, first))}; Silent Phase = layers 0–{phases.layer - 1}) goes at step {predicted}; "
            f"accuracy collapses at step {collapse.step} (95% item-bootstrap interval {low}–{high}, {n_items} items).")
    return Verdict("P1", status, statistic, float(collapse.step - predicted), text,
                   ci=(float(low - predicted), float(high - predicted)), n=n_items)
