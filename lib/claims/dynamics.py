"""Decision dynamics under pruning: the readout of every pruned network, its transition, and the
verdicts on the mechanism (C5b) and on the predictions it makes (P1, P1b).

Inputs are ``pruning.Trace`` objects run with ``readout=True`` (``Trace.readout_at``) and the intact
network's ``experiments.Phases``. The transition of a pruned network is located by the rule used for
the intact one (``experiments.phases_from_readout`` on its own readout rows: chance = accuracy of the
best constant answer) and reported as the *original* index of its layer.
Rules, fixed before any data is seen (intervals: 95%):

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
- **C5b, the mechanism** (amended rule, 2026-12-06). Phase-targeted traces (k = 1 .. K random layers removed
  inside one phase, one trace per seed), per (model, task): at each k, the share of seeds whose pruned network
  *has a transition of its own*, per phase; one-sided Fisher exact test (Silent has one less often than
  Decisive), Holm over k. Supported: at some k the test rejects (Holm-adjusted p < ``ALPHA``) and at least half
  of the Decisive-pruned networks have a transition at that k. Not supported: no k rejects and, at every k, the
  Silent share is at least 1/2 or at least the Decisive share. Otherwise inconclusive, and when the intact
  network has no transition (no Silent Phase to prune).
- **C5b as first registered** (:func:`verdict_c5b_registered`, kept beside the amended rule and shown with it).
  The same test, but a network counted as keeping the transition only when its readout has one *and* its final
  accuracy is not significantly below the intact network's (paired BCa item bootstrap of intact - pruned final
  accuracy: the interval's lower bound at or below 0). Amended because that accuracy clause re-tests C5 (the
  accuracy cost of Silent pruning) and lets the verdict on the transition pass or fail for a reason that is not
  the transition: the share of networks that keep their accuracy is reported beside it, labelled as C5's cost.
- **P1, the intact readout predicts the collapse** (registered; it cannot discriminate when most layers are
  Silent, since almost any pruner removes a Silent layer within a step or two: P1b is its discriminative form).
  Along Iterative Pruning the predicted collapse step is the first step that removes a layer of the intact
  network's Silent Phase; the observed one is the trace's collapse point (``claims.collapse.locate_collapse``,
  with its item-bootstrap step interval). Statistic: observed - predicted (steps). Supported: both exist and the
  predicted step lies inside the observed step's interval. Not supported: both exist and it lies outside.
  Inconclusive: no transition in the intact network, no collapse, or the pruner never removes a Silent layer.
- **P1b, a Silent removal raises the odds of collapse more than a Decisive one** (registered 2026-12-06, before
  it was run). One observation per (trace, step) of the traces whose layers are chosen at random (random orders
  and phase-targeted traces of the main model on its main task, so that which layers go is not chosen by their
  effect): *collapsed* when the pruned network's accuracy is at or below chance + ``collapse_margin`` (C1's
  threshold); predictors: the numbers of intact-Silent and intact-Decisive layers removed. Model: logistic
  regression, logit P(collapsed) = b0 + b_S n_Silent + b_D n_Decisive, fitted with Firth's penalty
  (``stats.firth_logit``: finite where the outcomes are separated, as a bootstrap resample can be). Statistic:
  b_S - b_D (log odds per layer), its interval the percentile bootstrap over traces, resampled within each
  design (random orders, Silent-targeted, Decisive-targeted). Supported: the interval lies at or above 0
  (``interval_status``); not supported: it lies below 0; inconclusive otherwise, and when the intact network has
  no transition or the traces show only one outcome. The greedy schedules (layers chosen by their effect) are a
  secondary fit, shown beside it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from layercollapse.claims.collapse import collapse_margin, locate_collapse
from layercollapse.claims.transition import ALPHA, depth_table
from layercollapse.claims.verdicts import Verdict, interval_status, lies_above, verdict_rule
from layercollapse.measures import metrics, stats
from layercollapse.measures.phases import Readout, phases_from_readout
from scipy.stats import binomtest, fisher_exact

__all__ = [
    "OUTCOMES",
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
    "transition_shares",
    "prevention_text",
    "retention_summary",
    "outcome_text",
    "odds_table",
    "clearest_transition_task",
    "retention_table",
    "verdict_c5b",
    "verdict_c5b_registered",
    "predicted_collapse_step",
    "first_silent_removals",
    "verdict_p1",
    "collapse_table",
    "CollapseOdds",
    "collapse_odds",
    "verdict_p1b",
]

#: What pruning did to a network's transition (module docstring), in the order the site lists them.
OUTCOMES = ("kept", "weakened", "delayed", "earlier", "prevented")


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
        outcome: one of :data:`OUTCOMES` (rule: module docstring).
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


def _height_items(scores: np.ndarray, gold: np.ndarray, row: int) -> tuple[np.ndarray, np.ndarray]:
    """Per item, what the readout gains from row ``row - 1`` to the last row: (correct, Decision Margin), each
    float64 [n_items]. ``scores``: float32 [n_rows, n_items, n_options]."""
    correct = metrics.correct(scores[[row - 1, -1]], gold).astype(np.float64)  # [2, n_items]
    margin = metrics.decision_margin(scores[[row - 1, -1]], gold)  # [2, n_items]
    return correct[1] - correct[0], margin[1] - margin[0]


def task_transitions(readouts: Mapping[str, Readout], confidence: float = 0.95, n_resamples: int = 1000,
                     seed: int = 0) -> pd.DataFrame:
    """The intact network's transition on each task, to choose the dose-response's second task by: one row per task
    with layer, layer_low / layer_high (item bootstrap), found (share of resamples with a transition), height and
    dm_height (accuracy and mean DM gained across it, with _low / _high; NaN without a transition), final_accuracy.
    Sorted by height, largest first."""
    rows = []
    for task, readout in readouts.items():
        phases = phases_from_readout(readout, confidence, n_resamples, seed)
        row = {"task": task, "layer": phases.layer, "layer_low": (phases.layer_ci or (None, None))[0],
               "layer_high": (phases.layer_ci or (None, None))[1], "found": phases.transition.found_fraction,
               "final_accuracy": float(metrics.accuracy(readout.scores[-1], readout.gold))}
        heights = (None, None)
        if phases.layer is not None:
            gains = _height_items(readout.scores, readout.gold, phases.transition.row)
            heights = tuple(stats.bootstrap_ci(values, confidence=confidence, n_resamples=n_resamples, seed=seed)
                            for values in gains)
        rows.append(row | _interval_columns("height", heights[0]) | _interval_columns("dm_height", heights[1]))
    table = pd.DataFrame(rows).sort_values("height", ascending=False, na_position="last", kind="stable")
    for name in ("layer", "layer_low", "layer_high"):
        table[name] = table[name].astype("Int64")
    return table.reset_index(drop=True)


def clearest_transition_task(table: pd.DataFrame, exclude: Sequence[str] = ()) -> str | None:
    """The task of :func:`task_transitions` with the largest transition height, among those not in ``exclude``
    (the main task) that have a transition; None when none has one."""
    candidates = table[~table["task"].isin(list(exclude)) & table["layer"].notna()]
    return None if candidates.empty else str(candidates.iloc[0]["task"])


def _outcome(layer: int | None, layer_ci: tuple[int, int] | None, expected: int | None,
             height_drop: stats.Interval | None) -> str:
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
        gains = _height_items(scores, gold, phases.transition.row)
        height, dm_height = (stats.bootstrap_ci(values, confidence=confidence, n_resamples=n_resamples, seed=seed)
                             for values in gains)
    if intact is None:  # the intact network: the reference itself
        expected = layer
        height_drop = None if layer is None else stats.Interval(0.0, 0.0, 0.0, confidence, "degenerate", len(final))
    else:
        expected = (None if intact.layer is None else
                    next((kept_layer for kept_layer in kept if kept_layer >= intact.layer), None))
        height_drop = None
        if gains is not None and intact.layer is not None:
            intact_gain, _ = _height_items(intact_scores, gold, intact.result.row)
            height_drop = stats.paired_bootstrap_ci(intact_gain, gains[0], confidence=confidence,
                                                    n_resamples=n_resamples, seed=seed)
    return PrunedTransition(step, removed, tuple(layers), phases.transition, layer, layer_ci, phases.dm_rising,
                            float(final.mean()), drop, expected, height, dm_height, height_drop,
                            _outcome(layer, layer_ci, expected, height_drop))


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
            row |= _interval_columns(name, stats.paired_bootstrap_ci(before, after, confidence=confidence,
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


def _interval_columns(name: str, interval: stats.Interval | None) -> dict[str, float | None]:
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
    (each with _low/_high), outcome, final_accuracy, drop (intact - final, C5's cost) with drop_low/high,
    retains_accuracy, keeps_transition_registered, schedule, seed, model, task."""
    rows = []
    intact = pruned_transition(trace, 0, confidence, n_resamples, seed)
    for step in range(trace.n_steps):
        found = intact if step == 0 else pruned_transition(trace, step, confidence, n_resamples, seed, intact)
        now = trace.removed[step]
        shift = found.shift or (None, None, None)
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
                     **_interval_columns("height", found.height), **_interval_columns("dm_height", found.dm_height),
                     **_interval_columns("height_drop", found.height_drop), "outcome": found.outcome,
                     "final_accuracy": found.final_accuracy,
                     "drop": found.drop.estimate, "drop_low": found.drop.low, "drop_high": found.drop.high,
                     "retains_accuracy": found.retains_accuracy,
                     "keeps_transition_registered": found.keeps_transition_registered})
    table = pd.DataFrame(rows)
    for name in ("transition_layer", "transition_depth", "layer_low", "layer_high", "expected_layer", "shift",
                 "shift_low", "shift_high"):
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


def retention_summary(tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """:func:`retention_table` of several tasks in one table for people: task, k, silent / decisive ("n of N" with a
    transition), the shares' intervals, p_holm_transition, the outcomes per phase, accuracy ("Silent n/N / Decisive
    n/N" keep their accuracy: C5's cost), registered (the first rule's counts) and p_holm_registered."""
    frames = []
    for task, table in tables.items():
        if not len(table):
            continue
        frames.append(table.assign(
            task=task,
            silent=[f"{a} of {n}" for a, n in zip(table["transition_silent"], table["n_silent"])],
            decisive=[f"{a} of {n}" for a, n in zip(table["transition_decisive"], table["n_decisive"])],
            accuracy=[f"{a}/{n} / {b}/{m}" for a, n, b, m in zip(table["accuracy_silent"], table["n_silent"],
                                                                  table["accuracy_decisive"], table["n_decisive"])],
            registered=[f"{a} / {b}" for a, b in zip(table["registered_silent"], table["registered_decisive"])]))
    if frames:
        return pd.concat(frames, ignore_index=True)
    columns = ["task", "k", "silent", "decisive", "accuracy", "registered", "outcomes_silent", "outcomes_decisive",
               *(f"{name}_{phase}_{end}" for name in ("share_transition",) for phase in ("silent", "decisive")
                 for end in ("low", "high")), "p_holm_transition", "p_holm_registered"]
    return pd.DataFrame(columns=columns)  # no phase-targeted networks: the table says so by having no rows


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


def prevention_text(table: pd.DataFrame) -> str:
    """At which k most Silent- or Decisive-pruned networks have no transition of their own (``retention_table``
    rows), as a sentence for the chapter."""
    if not len(table):
        return "Without a transition in the intact network there are no two phases to compare."
    parts = []
    for phase in ("silent", "decisive"):
        lost = table.loc[table[f"share_transition_{phase}"] < 0.5, "k"].astype(int).tolist()
        name = phase.capitalize()
        parts.append(f"{name} pruning leaves most networks without a transition at k = {', '.join(map(str, lost))}"
                     if lost else f"{name} pruning leaves a transition in at least half of the networks at every k")
    return "; ".join(parts) + f" (k = 1..{int(table['k'].max())})."


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


#: The columns of :func:`retention_table` each count is taken from, by rule.
COUNTED = {"transition": "has_transition", "registered": "keeps_transition_registered", "accuracy": "retains_accuracy"}


def _share_columns(count: int, n: int, name: str, confidence: float) -> dict[str, float]:
    interval = binomtest(count, n).proportion_ci(confidence, method="exact")
    return {f"{name}": count, f"n_{name.split('_', 1)[1]}": n, f"share_{name}": count / n,
            f"share_{name}_low": interval.low, f"share_{name}_high": interval.high}


def retention_table(networks: pd.DataFrame, confidence: float = 0.95, alpha: float = ALPHA) -> pd.DataFrame:
    """Per k >= 1: how many Silent- and Decisive-pruned networks have a transition, and the tests of C5b.

    Args:
        networks: :func:`phase_networks` of ``{"Silent": ..., "Decisive": ...}`` (one model and task).
    Returns:
        k; for each count c of :data:`COUNTED` ("transition": a transition of its own, the amended C5b;
        "registered": a transition and the accuracy retained, the first registered C5b; "accuracy": the accuracy
        retained, C5's cost) and phase: ``{c}_{phase}`` (networks), ``n_{phase}``, ``share_{c}_{phase}`` with
        Clopper-Pearson ``_low`` / ``_high``; for the two C5b counts, ``p_{c}`` (one-sided Fisher exact: Silent
        less often than Decisive), ``p_holm_{c}`` and ``reject_{c}`` (Holm over k); and ``outcomes_{phase}``,
        the networks per outcome (:data:`OUTCOMES`), as text.
    """
    phases = ("silent", "decisive")
    present = set(networks["phase"].str.lower()) if len(networks) else set()
    if not set(phases) <= present:  # a phase without layers: nothing to compare
        return pd.DataFrame(columns=["k"])
    rows = []
    pruned = networks[networks["k"] >= 1]
    for k in sorted(pruned["k"].unique()):
        at_k = pruned[pruned["k"] == k]
        if set(at_k["phase"].str.lower()) != set(phases):
            break  # the shorter phase's traces end here
        row = {"k": int(k)}
        for phase in phases:
            group = at_k[at_k["phase"].str.lower() == phase]
            for count, column in COUNTED.items():
                row |= _share_columns(int(group[column].sum()), len(group), f"{count}_{phase}", confidence)
            counts = group["outcome"].value_counts()
            row[f"outcomes_{phase}"] = ", ".join(f"{int(counts[o])} {o}" for o in OUTCOMES if o in counts)
        for count in ("transition", "registered"):
            table = [[row[f"{count}_silent"], row["n_silent"] - row[f"{count}_silent"]],
                     [row[f"{count}_decisive"], row["n_decisive"] - row[f"{count}_decisive"]]]
            row[f"p_{count}"] = float(fisher_exact(table, alternative="less").pvalue)
        rows.append(row)
    frame = pd.DataFrame(rows)
    for count in ("transition", "registered"):
        if len(frame):
            frame[f"reject_{count}"], frame[f"p_holm_{count}"] = stats.holm(frame[f"p_{count}"].to_numpy(), alpha)
    return frame


def _decide_c5b(table: pd.DataFrame, count: str) -> tuple[str, pd.Series]:
    """(status, deciding row) of the C5b test on ``count`` ("transition" or "registered"): module docstring."""
    deciding = table[table[f"reject_{count}"] & (table[f"share_{count}_decisive"] >= 0.5)]
    if len(deciding):
        return "supported", deciding.iloc[0]
    holds = ((table[f"share_{count}_silent"] >= 0.5)
             | (table[f"share_{count}_silent"] >= table[f"share_{count}_decisive"])).all()
    return ("not supported" if holds else "inconclusive"), table.iloc[-1]


def _c5b_verdict(table: pd.DataFrame | None, phases, networks: pd.DataFrame, count: str, statistic: str,
                 what: str) -> Verdict:
    model, task = (networks["model"].iloc[0], networks["task"].iloc[0]) if len(networks) else (None, None)
    where = f"{model} on {task}" if model else "The main model"
    if phases.layer is None or table is None or not len(table):
        return Verdict("C5b", "inconclusive", statistic, None, n=0, model=model, task=task,
                       text=f"{where} has no transition (or no layers in one phase), so there is no phase to prune "
                            "and C5b cannot be tested.")
    status, row = _decide_c5b(table, count)
    k_max = int(table["k"].max())
    per_k = "; ".join(f"k = {int(r['k'])}: {int(r[f'{count}_silent'])}/{int(r['n_silent'])} Silent, "
                      f"{int(r[f'{count}_decisive'])}/{int(r['n_decisive'])} Decisive" for _, r in table.iterrows())
    text = (f"{where}, k = 1..{k_max} random layers removed inside one phase ({int(row['n_silent'])} seeds per "
            f"phase): {what} in {per_k}. At k = {int(row['k'])} the one-sided Fisher exact test gives Holm-adjusted "
            f"p = {row[f'p_holm_{count}']:.3g}.")
    return Verdict("C5b", status, statistic, float(row[f"share_{count}_silent"]), text,
                   ci=(float(row[f"share_{count}_silent_low"]), float(row[f"share_{count}_silent_high"])),
                   n=int(row["n_silent"]), p=float(row[f"p_holm_{count}"]), model=model, task=task)


@verdict_rule
def verdict_c5b(networks: pd.DataFrame, phases, table: pd.DataFrame | None = None,
                alpha: float = ALPHA) -> Verdict:
    """C5b (amended rule): Silent-pruned networks lose their own transition, Decisive-pruned ones keep it (module
    docstring); one verdict per (model, task).

    Args:
        networks: :func:`phase_networks` of the Silent and Decisive traces of one model and task.
        table: ``retention_table(networks)``; computed here when None.
    """
    table = retention_table(networks, alpha=alpha) if table is None and len(networks) else table
    outcomes = ""
    if table is not None and len(table):
        status, row = _decide_c5b(table, "transition")
        outcomes = (f" What pruning did to the transition at k = {int(row['k'])}: Silent {row['outcomes_silent']}; "
                    f"Decisive {row['outcomes_decisive']}.")
    verdict = _c5b_verdict(table, phases, networks, "transition",
                           "share of Silent-pruned networks with a transition of their own",
                           "the pruned network's own readout has a transition")
    return dataclasses.replace(verdict, text=verdict.text + outcomes)


@verdict_rule
def verdict_c5b_registered(networks: pd.DataFrame, phases, table: pd.DataFrame | None = None,
                           alpha: float = ALPHA) -> Verdict:
    """C5b as first registered (amended, module docstring): "keeps the transition" also required the final accuracy
    not to drop significantly. Kept to be shown beside the amended rule, never recorded in the ledger."""
    table = retention_table(networks, alpha=alpha) if table is None and len(networks) else table
    return _c5b_verdict(table, phases, networks, "registered",
                        "share of Silent-pruned networks that keep the transition (first registered rule)",
                        "the pruned network keeps a transition and its accuracy")


# ------------------------------------------------------------------------------------------ P1, P1b


def predicted_collapse_step(trace, phases) -> int | None:
    """First step of ``trace`` that removes a layer of the intact network's Silent Phase, or None."""
    silent = set(phases.silent) if phases.layer is not None else set()
    return next((step for step, removed in enumerate(trace.removed) if silent & set(removed)), None)


def first_silent_removals(traces: Mapping[str, object], phases) -> pd.DataFrame:
    """Why P1 cannot discriminate: the step at which each schedule first removes an intact-Silent layer.

    Args:
        traces: schedule -> one trace or a list of traces (seeds).
    Returns:
        schedule, seed, step (None: never), layer (the Silent layer(s) removed then), n_silent / n_layers (the
        intact network's Silent layers and all its layers).
    """
    rows = []
    for schedule, found in traces.items():
        for trace in found if isinstance(found, Sequence) else [found]:
            step = predicted_collapse_step(trace, phases)
            layers = [] if step is None else sorted(set(trace.removed[step]) & set(phases.silent))
            rows.append({"schedule": schedule, "seed": trace.seed, "step": step, "layer": " ".join(map(str, layers)),
                         "n_silent": len(phases.silent), "n_layers": phases.n_layers})
    table = pd.DataFrame(rows)
    return table.astype({"step": "Int64", "seed": "Int64"})  # None: never / a schedule without a seed


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
            f"accuracy collapses at step {collapse.step} (95% item-bootstrap interval {low}–{high}, {n_items} items, "
            f"{collapse.n_resamples:,} resamples).")
    return Verdict("P1", status, statistic, float(collapse.step - predicted), text,
                   ci=(float(low - predicted), float(high - predicted)), n=n_items)


def _design(trace, phases) -> str:
    """How P1b names the design of a trace (the bootstrap resamples traces within a design)."""
    if trace.schedule == "random_in_range":
        layers = set(trace.spec.get("layers") or ())
        return "Silent-targeted" if layers <= set(phases.silent) else "Decisive-targeted"
    return "random order" if trace.schedule == "random" else "chosen by a criterion"


def collapse_table(traces: Sequence, phases) -> pd.DataFrame:
    """One row per (trace, step) for P1b: trace (an id), design, schedule, seed, step, n_silent / n_decisive
    (intact-Silent / -Decisive layers removed), accuracy, threshold (chance + C1's margin for the trace's items),
    collapsed (accuracy <= threshold), model, task. ``phases``: the intact network's, on the traces' task."""
    frames = [pd.DataFrame(columns=["trace", "design", "schedule", "seed", "step", "n_silent", "n_decisive",
                                    "accuracy", "threshold", "collapsed", "model", "task"])]
    for index, trace in enumerate(traces):
        chance = metrics.chance_accuracy(trace.gold, trace.scores.shape[-1])
        threshold = chance + collapse_margin(chance, len(trace.gold))
        removed = ~trace.kept  # [n_steps, n_layers]
        silent = np.isin(np.arange(trace.n_layers), phases.silent)  # [n_layers]
        accuracy = trace.accuracy()
        frames.append(pd.DataFrame({
            "trace": f"{trace.schedule}:{trace.seed}:{index}", "design": _design(trace, phases),
            "schedule": trace.schedule, "seed": trace.seed, "step": np.arange(trace.n_steps),
            "n_silent": (removed & silent).sum(axis=1), "n_decisive": (removed & ~silent).sum(axis=1),
            "accuracy": accuracy, "threshold": threshold, "collapsed": accuracy <= threshold,
            "model": trace.spec.get("model"), "task": trace.spec.get("task")}))
    return pd.concat(frames[1:], ignore_index=True) if len(frames) > 1 else frames[0]


@dataclass(frozen=True)
class CollapseOdds:
    """P1b's logistic fit of one set of traces.

    Attributes:
        params: (b0, b_S, b_D): intercept and log odds of collapse per Silent / Decisive layer removed (Firth fit).
        difference: b_S - b_D with its percentile bootstrap interval over traces (``stats.Interval``).
        beta_silent, beta_decisive: the two slopes with their bootstrap intervals.
        n_traces, n_networks, n_collapsed: traces, (trace, step) rows and collapsed rows behind it.
        designs: the designs resampled within (e.g. "random order", "Silent-targeted").
    """

    params: tuple[float, float, float]
    difference: stats.Interval
    beta_silent: stats.Interval
    beta_decisive: stats.Interval
    n_traces: int
    n_networks: int
    n_collapsed: int
    designs: tuple[str, ...]

    @property
    def both_outcomes(self) -> bool:
        """The traces show collapsed and intact networks both (else the slopes say nothing)."""
        return 0 < self.n_collapsed < self.n_networks


def collapse_odds(table: pd.DataFrame, n_resamples: int = 1000, seed: int = 0,
                  confidence: float = 0.95) -> CollapseOdds | None:
    """Fit P1b's model to :func:`collapse_table` rows and bootstrap it over traces within designs (module docstring);
    None for no rows."""
    if table.empty:
        return None
    traces = list(dict.fromkeys(table["trace"]))
    design = table.groupby("trace", sort=False)["design"].first().loc[traces].to_numpy()
    rows_of = {trace: np.flatnonzero(table["trace"].to_numpy() == trace) for trace in traces}
    exog = np.column_stack([np.ones(len(table)), table["n_silent"], table["n_decisive"]]).astype(np.float64)
    endog = table["collapsed"].to_numpy(dtype=np.float64)

    def fit(rows: np.ndarray) -> np.ndarray:
        try:
            return stats.firth_logit(exog[rows], endog[rows])
        except ValueError:  # a resample where a count never varies: that slope is not identified
            return np.full(3, np.nan)

    params = fit(np.arange(len(table)))
    draws = np.array([fit(np.concatenate([rows_of[traces[i]] for i in resample]))
                      for resample in stats.stratified_resamples(design, n_resamples, seed)])  # [n_resamples, 3]
    alpha = 1 - confidence

    def interval(estimate: float, values: np.ndarray) -> stats.Interval:
        low, high = np.nanquantile(values, [alpha / 2, 1 - alpha / 2]) if np.isfinite(values).any() else (np.nan,) * 2
        return stats.Interval(float(estimate), float(low), float(high), confidence, "percentile (traces)", len(traces))

    return CollapseOdds(tuple(float(p) for p in params), interval(params[1] - params[2], draws[:, 1] - draws[:, 2]),
                        interval(params[1], draws[:, 1]), interval(params[2], draws[:, 2]), len(traces), len(table),
                        int(endog.sum()), tuple(dict.fromkeys(design.tolist())))


def odds_table(fits: Mapping[str, CollapseOdds | None]) -> pd.DataFrame:
    """P1b's fits side by side: one row per fit (its name: "random" = the primary fit, "greedy" = the schedules that
    choose layers by a criterion, a task name = that task's phase-targeted traces) with n_traces, n_networks,
    n_collapsed and beta_silent, beta_decisive, difference with _low / _high."""
    names = {"random": "random orders and phase-targeted (primary)", "greedy": "chosen by a criterion"}
    rows = []
    for name, fit in fits.items():
        if fit is None:
            continue
        row = {"fit": names.get(name, f"phase-targeted, {name}"), "n_traces": fit.n_traces,
               "n_networks": fit.n_networks, "n_collapsed": fit.n_collapsed}
        for column in ("beta_silent", "beta_decisive", "difference"):
            row |= _interval_columns(column, getattr(fit, column))
        rows.append(row)
    columns = ["fit", "n_traces", "n_networks", "n_collapsed",
               *(f"{name}{end}" for name in ("beta_silent", "beta_decisive", "difference") for end in ("", "_low", "_high"))]
    return pd.DataFrame(rows, columns=columns)


@verdict_rule
def verdict_p1b(random_odds: CollapseOdds | None, phases, model: str | None = None,
                greedy_odds: CollapseOdds | None = None) -> Verdict:
    """P1b: a Silent removal raises the odds of collapse more than a Decisive one (rule: module docstring).

    Args:
        random_odds: :func:`collapse_odds` of the traces whose layers are chosen at random (None: none ran).
        model: the model the traces prune (named in the text).
        greedy_odds: the same for the greedy schedules, quoted in the text (secondary).
    """
    statistic = "b_Silent - b_Decisive (log odds of collapse per layer removed)"
    if phases.layer is None or random_odds is None or not random_odds.both_outcomes:
        why = ("the intact network has no transition, so no layer is Silent or Decisive" if phases.layer is None else
               "no trace with randomly chosen layers was run" if random_odds is None else
               f"the {random_odds.n_networks} pruned networks are all {'collapsed' if random_odds.n_collapsed else 'intact'}")
        return Verdict("P1b", "inconclusive", statistic, None, n=0 if random_odds is None else random_odds.n_traces,
                       text=f"{model}: P1b cannot be tested, because {why}.")
    difference = random_odds.difference
    status = interval_status(difference.ci, 0, "above")
    text = (f"{model}: over {random_odds.n_networks} pruned networks of {random_odds.n_traces} traces whose layers are "
            f"chosen at random ({', '.join(random_odds.designs)}; {random_odds.n_collapsed} collapsed), each Silent "
            f"layer removed multiplies the odds of collapse by {np.exp(random_odds.params[1]):.2f} and each Decisive "
            f"layer by {np.exp(random_odds.params[2]):.2f}: b_S - b_D = {difference.text(2)} (percentile bootstrap "
            f"over traces).")
    if greedy_odds is not None and np.isfinite(greedy_odds.difference.estimate):
        text += (f" The greedy schedules ({greedy_odds.n_traces} traces, layers chosen by their effect) give "
                 f"{greedy_odds.difference.text(2)}.")
    return Verdict("P1b", status, statistic, difference.estimate, text, ci=difference.ci, n=random_odds.n_traces)
