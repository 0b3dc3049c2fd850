"""The transition of every pruned network: located by the intact network's rule in the pruned network's own readout,
and what pruning did to it.

Inputs are ``pruning.Trace`` objects run with ``readout=True`` (``Trace.readout_at``) and the intact network's
``measures.phases.Phases``. The transition of a pruned network is located by the rule used for the intact one
(``phases_from_readout`` on its own readout rows: chance = accuracy of the best constant answer) and reported as the
*original* index of its layer. Rules, fixed before any data is seen (intervals: 95%):

- **What happens to the transition** of a pruned network (registered 2026-12-06). Its *location* is the
  original index of its transition layer, with the item-bootstrap interval; the intact network's transition
  layer t, or the first kept layer after t when t was removed, is where it is *expected* (none when every
  layer from t on was removed); the *shift* is located - expected (original layers). Its *height* is how much
  the readout gains across it: accuracy at the last layer minus accuracy at the layer before the transition
  (per item, so its interval is the BCa item bootstrap of a mean), and the same for the Decision Margin; the
  height drop is intact - pruned height, paired over the items. Each pruned network is then **prevented** (its
  readout has no transition), **earlier** (the whole location interval lies before the expected layer, or
  nothing is expected), **delayed** (it lies after it), **weakened** (in place, and the accuracy height drop's
  interval lies above 0) or **kept** (in place, height not significantly lower).
- **The same classes by where the readout rises** (amended 2026-12-07; the registered classes stay beside them as
  ``outcome``). The registered location is the first layer whose accuracy band *stays above chance*: a curve that
  rises at the same layer but lower crosses that line later, so a network whose readout is only lower is classed
  *delayed*. The height-free location is the layer of the **steepest rise of the mean Decision Margin**
  (``measures.phases.steepest_rise``: the readout row whose mean DM exceeds the previous row's by the most, with
  its item-bootstrap percentile interval), expected at the intact network's steepest-rise layer or the first kept
  layer after it. ``outcome_rise`` is then the registered rule with this location: prevented (no transition: the
  registered existence rule, unchanged), earlier, delayed (the whole rise interval lies after the expected rise: the
  rise itself moved), weakened or kept (the registered height rule, unchanged).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from layercollapse.claims.transition import depth_table
from layercollapse.claims.verdicts import lies_above
from layercollapse.measures import metrics, stats
from layercollapse.measures.phases import Readout, height_gains, phases_from_readout, steepest_rise
from scipy.stats import binomtest

__all__ = [
    "OUTCOMES",
    "RISE_AMENDMENT",
    "PrunedTransition",
    "pruned_transition",
    "transition_change",
    "single_layer_costs",
    "transitions_along",
    "dynamics_table",
    "seed_mean_dynamics",
    "seed_transitions",
    "phase_networks",
    "task_transitions",
    "transition_summary",
    "LAYER_COLUMNS",
    "transition_shares",
    "outcome_text",
    "outcome_changes",
    "clearest_transition_task",
    "interval_columns",
    "class_counts",
]

#: What pruning did to a network's transition (module docstring), in the order the site lists them.
OUTCOMES = ("kept", "weakened", "delayed", "earlier", "prevented")

#: Why the outcome classes were re-derived with the steepest-rise location (shown beside the registered classes).
RISE_AMENDMENT = ("Amended on 2026-12-07: a transition's location is the layer where the mean Decision Margin rises "
                  "most steeply, not the first layer whose accuracy stays above chance. The registered location moves "
                  "later when the whole readout is lower, even where the rise happens at the same layer, so it classed "
                  "networks whose readout is only lower as 'delayed'; with the height-free location 'delayed' means "
                  "that the rise itself moved. Whether a network has a transition at all is decided as registered.")


def _phase_name(layer: int, phases) -> str:
    if layer < 0:
        return "embeddings"
    return "Decisive" if phases.layer is not None and layer >= phases.layer else "Silent"


@dataclass(frozen=True)
class PrunedTransition:
    """The transition of one pruned network (one step of a trace), and what pruning did to it.

    Attributes:
        step: trace step; removed: every layer removed up to it (original indices).
        layers: original layers read, -1 (embeddings) first.
        result: ``stats.TransitionResult`` over the readout rows (``index`` = readout row).
        layer, layer_ci: original index of the transition layer and its bootstrap interval, or None.
        dm_rising: mean DM after the transition exceeds mean DM before it (as ``experiments.Phases``).
        final_accuracy: accuracy of the pruned network's output (fraction).
        drop: intact - pruned final accuracy, paired item bootstrap (``stats.Interval``): C5's accuracy cost.
        expected: where the intact transition is expected among the kept layers (the intact transition layer, or the
            first kept layer after it), or None (the intact network has none, or every layer from it on is removed).
        height, dm_height: accuracy (fraction) and mean Decision Margin gained across the transition (last readout
            row minus the row before the transition), item bootstrap; None without a transition.
        height_drop: intact - pruned accuracy height, paired item bootstrap; None where either has no transition.
        outcome: one of :data:`OUTCOMES` (the registered rule: module docstring).
        rise_layer, rise_ci: original layer of the steepest rise of the mean Decision Margin and its item-bootstrap
            interval (``measures.phases.steepest_rise``), a location that does not depend on the height.
        rise_expected: where the intact network's steepest rise is expected among the kept layers (as ``expected``).
        outcome_rise: the class of :data:`OUTCOMES` with the steepest-rise location (the amended rule).
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
    expected: int | None = None
    height: stats.Interval | None = None
    dm_height: stats.Interval | None = None
    height_drop: stats.Interval | None = None
    outcome: str = "kept"
    rise_layer: int | None = None
    rise_ci: tuple[int, int] | None = None
    rise_expected: int | None = None
    outcome_rise: str = "kept"

    @property
    def has_transition(self) -> bool:
        """Its own readout has a transition (the amended C5b counts these)."""
        return self.layer is not None

    @property
    def retains_accuracy(self) -> bool:
        """Its final accuracy is not significantly below the intact network's (C5's business, not C5b's)."""
        return self.drop.low <= 0

    @property
    def keeps_transition_registered(self) -> bool:
        """The first registered rule's "keeps the transition": a transition *and* the accuracy retained."""
        return self.has_transition and self.retains_accuracy

    @property
    def shift(self) -> tuple[int, int, int] | None:
        """(located - expected, and the same for both ends of the location interval), original layers; or None."""
        if self.layer is None or self.expected is None:
            return None
        low, high = self.layer_ci or (self.layer, self.layer)
        return self.layer - self.expected, low - self.expected, high - self.expected

    @property
    def rise_shift(self) -> tuple[int, int, int] | None:
        """:attr:`shift` of the steepest-rise location (rise - expected rise, and both interval ends), or None."""
        if self.rise_layer is None or self.rise_expected is None:
            return None
        return tuple(value - self.rise_expected for value in (self.rise_layer, *self.rise_ci))


def transition_summary(readout: Readout, confidence: float = 0.95, n_resamples: int = 1000,
                       seed: int = 0) -> dict[str, Any]:
    """The intact network's transition in one readout, as a table row: layer, layer_low / layer_high (item
    bootstrap), found (share of resamples with a transition), rise_layer, rise_low / rise_high (the steepest rise of
    mean DM, original layers), height and dm_height (accuracy and mean DM gained across the transition, BCa item
    bootstrap, with _low / _high; None without one), final_accuracy, chance (best constant answer), n_layers, n_items."""
    phases = phases_from_readout(readout, confidence, n_resamples, seed)
    row = {"layer": phases.layer, "layer_low": (phases.layer_ci or (None, None))[0],
           "layer_high": (phases.layer_ci or (None, None))[1], "found": phases.transition.found_fraction,
           "final_accuracy": float(metrics.accuracy(readout.scores[-1], readout.gold)), "chance": phases.chance,
           "n_layers": phases.n_layers, "n_items": len(readout.gold)}
    heights = (None, None)
    if phases.layer is not None:
        gains = height_gains(readout.scores, readout.gold, phases.transition.row)
        heights = tuple(stats.bootstrap_ci(values, confidence=confidence, n_resamples=n_resamples, seed=seed)
                        for values in gains)
    rise = steepest_rise(readout.scores, readout.gold, confidence, n_resamples, seed)
    row |= {"rise_layer": rise.row - 1, "rise_low": rise.row_ci[0] - 1, "rise_high": rise.row_ci[1] - 1}
    return row | interval_columns("height", heights[0]) | interval_columns("dm_height", heights[1])


#: The integer columns of :func:`transition_summary` (nullable: None without a transition).
LAYER_COLUMNS = ("layer", "layer_low", "layer_high", "rise_layer", "rise_low", "rise_high")


def task_transitions(readouts: Mapping[str, Readout], confidence: float = 0.95, n_resamples: int = 1000,
                     seed: int = 0) -> pd.DataFrame:
    """The intact network's transition on each task, to choose the dose-response's second task by: one row per task
    (task, then :func:`transition_summary`'s columns), sorted by height, largest first."""
    rows = [{"task": task, **transition_summary(readout, confidence, n_resamples, seed)}
            for task, readout in readouts.items()]
    table = pd.DataFrame(rows).sort_values("height", ascending=False, na_position="last", kind="stable")
    for name in LAYER_COLUMNS:
        table[name] = table[name].astype("Int64")
    for name in ("height", "height_low", "height_high", "dm_height", "dm_height_low", "dm_height_high"):
        table[name] = table[name].astype("float64")
    return table.reset_index(drop=True)


def clearest_transition_task(table: pd.DataFrame, exclude: Sequence[str] = ()) -> str | None:
    """The task of :func:`task_transitions` with the largest transition height, among those not in ``exclude``
    (the main task) that have a transition; None when none has one."""
    candidates = table[~table["task"].isin(list(exclude)) & table["layer"].notna()]
    return None if candidates.empty else str(candidates.iloc[0]["task"])


def _outcome(layer: int | None, layer_ci: tuple[int, int] | None, expected: int | None,
             height_drop: stats.Interval | None) -> str:
    """The class of :data:`OUTCOMES` of a transition located at ``layer`` (None: none) against ``expected``."""
    if layer is None:
        return "prevented"
    low, high = layer_ci or (layer, layer)
    if expected is None or high < expected:
        return "earlier"
    if low > expected:
        return "delayed"
    return "weakened" if height_drop is not None and lies_above(height_drop.ci, 0) else "kept"


def pruned_transition(trace, step: int, confidence: float = 0.95, n_resamples: int = 1000,
                      seed: int = 0, intact: PrunedTransition | None = None) -> PrunedTransition:
    """Transition of the network pruned at ``step`` (``trace`` run with ``readout=True``), located by the
    intact network's rule (``experiments.phases_from_readout`` on the pruned network's own readout), and what
    pruning did to it against the intact network (``intact``: step 0's, computed here when None).

    The readout's rows and the items are those of the trace: step 0 is the intact network on the same items, so
    the drop and the height drop are paired."""
    layers, scores = trace.readout_at(step)  # [n_kept + 1, n_items, n_options]
    removed = tuple(int(i) for i in np.flatnonzero(~trace.kept[step]))
    if step > 0 and intact is None:
        intact = pruned_transition(trace, 0, confidence, n_resamples, seed)
    intact_scores = trace.readout_at(0)[1] if step > 0 else None
    return transition_change(layers, scores, trace.gold, intact, intact_scores, step=step, removed=removed,
                             confidence=confidence, n_resamples=n_resamples, seed=seed)


def transition_change(layers: Sequence[int], scores: np.ndarray, gold: np.ndarray,
                      intact: PrunedTransition | None = None, intact_scores: np.ndarray | None = None, *,
                      step: int = 0, removed: tuple[int, ...] = (), confidence: float = 0.95,
                      n_resamples: int = 1000, seed: int = 0) -> PrunedTransition:
    """The transition of one network from its readout, and what pruning did to it (rules: module docstring).

    Args:
        layers: original layers read, -1 (the embeddings) first; scores: float32 [len(layers), n_items, n_options].
        intact, intact_scores: the intact network's :class:`PrunedTransition` and readout on the same items; None for
            the intact network itself.
        step, removed: recorded as they are (a trace's step, the layers missing).
    """
    kept = tuple(layers[1:])
    phases = phases_from_readout(Readout(scores, gold, {}), confidence, n_resamples, seed)
    layer = None if phases.layer is None else kept[phases.layer]  # position among kept -> original index
    layer_ci = None if phases.layer_ci is None else (kept[phases.layer_ci[0]], kept[phases.layer_ci[1]])
    final = metrics.correct(scores[-1], gold)
    intact_final = final if intact_scores is None else metrics.correct(intact_scores[-1], gold)
    drop = stats.paired_bootstrap_ci(intact_final, final, confidence=confidence, n_resamples=n_resamples, seed=seed)
    height = dm_height = gains = None
    if layer is not None:
        gains = height_gains(scores, gold, phases.transition.row)
        height, dm_height = (stats.bootstrap_ci(values, confidence=confidence, n_resamples=n_resamples, seed=seed)
                             for values in gains)
    rise = steepest_rise(scores, gold, confidence, n_resamples, seed)
    rise_layer = None if rise is None else kept[rise.row - 1]  # row r reads the output of the r-th kept layer
    rise_ci = None if rise is None else (kept[rise.row_ci[0] - 1], kept[rise.row_ci[1] - 1])
    if intact is None:  # the intact network: the reference itself
        expected, rise_expected = layer, rise_layer
        height_drop = None if layer is None else stats.Interval(0.0, 0.0, 0.0, confidence, "degenerate", len(final))
    else:
        expected, rise_expected = (None if reference is None else
                                   next((kept_layer for kept_layer in kept if kept_layer >= reference), None)
                                   for reference in (intact.layer, intact.rise_layer))
        height_drop = None
        if gains is not None and intact.layer is not None:
            intact_gain, _ = height_gains(intact_scores, gold, intact.result.row)
            height_drop = stats.paired_bootstrap_ci(intact_gain, gains[0], confidence=confidence,
                                                    n_resamples=n_resamples, seed=seed)
    return PrunedTransition(step, removed, tuple(layers), phases.transition, layer, layer_ci, phases.dm_rising,
                            float(final.mean()), drop, expected, height, dm_height, height_drop,
                            _outcome(layer, layer_ci, expected, height_drop), rise_layer, rise_ci, rise_expected,
                            _outcome(None if layer is None else rise_layer, rise_ci, rise_expected, height_drop))


def single_layer_costs(removals: Mapping[str, Any], gold: np.ndarray, phases=None, confidence: float = 0.95,
                       n_resamples: int = 1000, seed: int = 0) -> pd.DataFrame:
    """What removing each layer alone costs, measured (``pruning.single_layer_removals``), one row per layer.

    Returns:
        layer, phase (intact network's; with ``phases``), accuracy (of the network without it), accuracy_drop and
        dm_drop (intact - without, paired item bootstrap, with _low / _high), and with readouts the transition of the
        network without it: transition_layer and outcome (:data:`OUTCOMES`); needed = the outcome is not "kept"
        (the transition needs the layer: without it the transition is prevented, moved or weakened).
    """
    intact = removals["intact"]
    intact_correct, intact_margin = metrics.correct(intact, gold), metrics.decision_margin(intact, gold)
    reference = None
    if removals.get("intact_readout") is not None:
        n_layers = removals["scores"].shape[0]
        reference = transition_change((-1, *range(n_layers)), removals["intact_readout"], gold,
                                      confidence=confidence, n_resamples=n_resamples, seed=seed)
    rows = []
    for layer, scores in enumerate(removals["scores"]):
        row = {"layer": layer, "phase": _phase_name(layer, phases) if phases is not None else None,
               "accuracy": float(metrics.accuracy(scores, gold))}
        for name, before, after in (("accuracy_drop", intact_correct, metrics.correct(scores, gold)),
                                    ("dm_drop", intact_margin, metrics.decision_margin(scores, gold))):
            row |= interval_columns(name, stats.paired_bootstrap_ci(before, after, confidence=confidence,
                                                                     n_resamples=n_resamples, seed=seed))
        if reference is not None:
            kept = tuple(other for other in range(len(removals["scores"])) if other != layer)
            found = transition_change((-1, *kept), removals["readouts"][layer], gold, reference,
                                      removals["intact_readout"], removed=(layer,), confidence=confidence,
                                      n_resamples=n_resamples, seed=seed)
            row |= {"transition_layer": found.layer, "outcome": found.outcome, "needed": found.outcome != "kept"}
        rows.append(row)
    table = pd.DataFrame(rows)
    if "transition_layer" in table:
        table["transition_layer"] = table["transition_layer"].astype("Int64")
    return table


def interval_columns(name: str, interval: stats.Interval | None) -> dict[str, float | None]:
    """``{name: estimate, name_low: low, name_high: high}`` of an interval (None values for None): a table's columns."""
    if interval is None:
        return {name: None, f"{name}_low": None, f"{name}_high": None}
    return {name: interval.estimate, f"{name}_low": interval.low, f"{name}_high": interval.high}


def transitions_along(trace, phases=None, confidence: float = 0.95, n_resamples: int = 1000,
                      seed: int = 0) -> pd.DataFrame:
    """One row per step: step, n_removed, removed_now (layers removed at the step), removed_phase (their phase
    in the intact network), n_silent / n_decisive (intact-Silent / -Decisive layers removed up to the step, with
    ``phases``), transition_layer (original index; NaN: none), transition_depth (its readout row: depth among the
    remaining layers, as in :func:`dynamics_table`), layer_low/high, transition_share (share of resamples with
    one), dm_rising, has_transition, expected_layer, shift (+ shift_low/high), height / dm_height / height_drop
    (each with _low/_high), outcome (the registered classes), rise_layer (+ rise_low/high: the steepest rise of
    mean DM), rise_expected, rise_shift (+ rise_shift_low/high), outcome_rise (the amended classes), final_accuracy,
    drop (intact - final, C5's cost) with drop_low/high, retains_accuracy, keeps_transition_registered, schedule,
    seed, model, task."""
    rows = []
    intact = pruned_transition(trace, 0, confidence, n_resamples, seed)
    for step in range(trace.n_steps):
        found = intact if step == 0 else pruned_transition(trace, step, confidence, n_resamples, seed, intact)
        now = trace.removed[step]
        shift = found.shift or (None, None, None)
        rise_shift = found.rise_shift or (None, None, None)
        phase_of_removed = [_phase_name(layer, phases) for layer in found.removed] if phases is not None else []
        rows.append({"step": step, "n_removed": len(found.removed), "removed_now": " ".join(map(str, now)),
                     "removed_phase": ", ".join(sorted({_phase_name(layer, phases) for layer in now}))
                     if phases is not None and now else "",
                     "n_silent": phase_of_removed.count("Silent"), "n_decisive": phase_of_removed.count("Decisive"),
                     "transition_layer": found.layer,
                     "transition_depth": None if found.layer is None else found.layers.index(found.layer),
                     "layer_low": found.layer_ci[0] if found.layer_ci else None,
                     "layer_high": found.layer_ci[1] if found.layer_ci else None,
                     "transition_share": found.result.found_fraction, "dm_rising": found.dm_rising,
                     "has_transition": found.has_transition, "expected_layer": found.expected,
                     "shift": shift[0], "shift_low": shift[1], "shift_high": shift[2],
                     **interval_columns("height", found.height), **interval_columns("dm_height", found.dm_height),
                     **interval_columns("height_drop", found.height_drop), "outcome": found.outcome,
                     "rise_layer": found.rise_layer, "rise_low": (found.rise_ci or (None, None))[0],
                     "rise_high": (found.rise_ci or (None, None))[1], "rise_expected": found.rise_expected,
                     "rise_shift": rise_shift[0], "rise_shift_low": rise_shift[1], "rise_shift_high": rise_shift[2],
                     "outcome_rise": found.outcome_rise,
                     "final_accuracy": found.final_accuracy,
                     "drop": found.drop.estimate, "drop_low": found.drop.low, "drop_high": found.drop.high,
                     "retains_accuracy": found.retains_accuracy,
                     "keeps_transition_registered": found.keeps_transition_registered})
    table = pd.DataFrame(rows)
    for name in ("transition_layer", "transition_depth", "layer_low", "layer_high", "expected_layer", "shift",
                 "shift_low", "shift_high", "rise_layer", "rise_low", "rise_high", "rise_expected", "rise_shift",
                 "rise_shift_low", "rise_shift_high"):
        table[name] = table[name].astype("Int64")
    for name in ("height", "dm_height", "height_drop"):
        for column in (name, f"{name}_low", f"{name}_high"):
            table[column] = table[column].astype("float64")
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


def phase_networks(traces_by_phase: Mapping[str, Sequence], phases=None, confidence: float = 0.95,
                   n_resamples: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Every network of phase-targeted traces: :func:`transitions_along` of each trace, with ``phase`` (the key of
    ``traces_by_phase``, e.g. "Silent") and ``k`` (layers removed inside it = the step)."""
    frames = [transitions_along(trace, phases, confidence, n_resamples, seed).assign(phase=phase)
              for phase, traces in traces_by_phase.items() for trace in traces]
    if not frames:
        return pd.DataFrame(columns=["phase", "k", "seed", "has_transition", "outcome"])
    return pd.concat(frames, ignore_index=True).rename(columns={"step": "k"})


def transition_shares(networks: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Per (phase, k) of :func:`phase_networks`: n (networks), share (with a transition of their own) and its
    Clopper-Pearson share_low / share_high."""
    rows = []
    for (phase, k), group in networks.groupby(["phase", "k"], sort=False):
        count = int(group["has_transition"].sum())
        interval = binomtest(count, len(group)).proportion_ci(confidence, method="exact")
        rows.append({"phase": phase, "k": int(k), "n": len(group), "share": count / len(group),
                     "share_low": interval.low, "share_high": interval.high})
    return pd.DataFrame(rows, columns=["phase", "k", "n", "share", "share_low", "share_high"])




def outcome_text(networks: pd.DataFrame) -> str:
    """What pruning did to the transitions of phase-targeted networks, per phase over all k >= 1, as a sentence:
    e.g. "Of the 60 Silent-pruned networks, 41 keep their transition, 15 have it weakened, 4 have none; ..."."""
    pruned = networks[networks["k"] >= 1]
    verbs = {"kept": "keep their transition", "weakened": "have it weakened (in place, lower)",
             "delayed": "have it delayed", "earlier": "have it earlier", "prevented": "have none"}
    parts = []
    for phase, group in pruned.groupby("phase", sort=False):
        counts = group["outcome"].value_counts()
        listed = ", ".join(f"{int(counts[outcome])} {verbs[outcome]}" for outcome in OUTCOMES if outcome in counts)
        parts.append(f"of the {len(group)} {phase}-pruned networks (all k), {listed}")
    text = "; ".join(parts) + "."
    return text[0].upper() + text[1:] if parts else ""



def seed_transitions(networks: pd.DataFrame) -> pd.DataFrame:
    """Per k of one phase's networks (:func:`phase_networks` rows of one phase): n_seeds, share_found (seeds whose
    pruned network has a transition), depth_mean / depth_min / depth_max (transition depth among the remaining
    layers, over seeds that have one; NaN: none), transition_depth (depth_mean rounded: the row a plot marks),
    model, task."""
    depth = networks["transition_depth"].astype("float64")
    grouped = networks.assign(depth=depth).groupby("k")
    summary = pd.DataFrame({"n_seeds": grouped.size(), "share_found": grouped["has_transition"].mean(),
                            "depth_mean": grouped["depth"].mean(), "depth_min": grouped["depth"].min(),
                            "depth_max": grouped["depth"].max()})
    summary = summary.rename_axis("k").reset_index()
    summary["transition_depth"] = summary["depth_mean"].round().astype("Int64")
    summary["model"], summary["task"] = networks["model"].iloc[0], networks["task"].iloc[0]
    return summary




def outcome_changes(networks: pd.DataFrame) -> pd.DataFrame:
    """How many phase-targeted networks change class when the transition is located by its steepest rise instead of
    where its accuracy first stays above chance (:func:`phase_networks` rows, k >= 1).

    Returns:
        One row per (phase, k): n (networks), changed (networks whose ``outcome_rise`` differs from ``outcome``),
        registered and amended (the networks per class under each rule, as text), changes (e.g. "3 delayed -> kept").
    """
    rows = []
    for (phase, k), group in networks[networks["k"] >= 1].groupby(["phase", "k"], sort=False):
        moved = group[group["outcome"] != group["outcome_rise"]]
        pairs = moved.groupby(["outcome", "outcome_rise"], sort=False).size()
        rows.append({"phase": phase, "k": int(k), "n": len(group), "changed": len(moved),
                     "registered": class_counts(group["outcome"]), "amended": class_counts(group["outcome_rise"]),
                     "changes": ", ".join(f"{n} {old} → {new}" for (old, new), n in pairs.items()) or "none"})
    return pd.DataFrame(rows, columns=["phase", "k", "n", "changed", "registered", "amended", "changes"])


def class_counts(outcomes: pd.Series) -> str:
    """Networks per class of :data:`OUTCOMES`, as text ("5 kept, 3 delayed")."""
    counts = outcomes.value_counts()
    return ", ".join(f"{int(counts[outcome])} {outcome}" for outcome in OUTCOMES if outcome in counts)
