"""Predictions the mechanism makes about the collapse: P1 (registered first) and P1b (its discriminative form).

Inputs are ``pruning.Trace`` objects and the intact network's ``measures.phases.Phases``. Rules, fixed before any data
is seen (intervals: 95%):

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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from layercollapse.claims.collapse import collapse_margin, locate_collapse
from layercollapse.claims.pruned_transitions import interval_columns
from layercollapse.claims.verdicts import Verdict, interval_status, verdict_rule
from layercollapse.measures import metrics, stats

__all__ = [
    "predicted_collapse_step",
    "first_silent_removals",
    "verdict_p1",
    "collapse_table",
    "CollapseOdds",
    "collapse_odds",
    "odds_table",
    "verdict_p1b",
]


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
    choose layers by a criterion, any other name shown as it is) with n_traces, n_networks, n_collapsed and
    beta_silent, beta_decisive, difference with _low / _high."""
    names = {"random": "random orders and phase-targeted (primary)", "greedy": "chosen by a criterion"}
    rows = []
    for name, fit in fits.items():
        if fit is None:
            continue
        row = {"fit": names.get(name, name), "n_traces": fit.n_traces,
               "n_networks": fit.n_networks, "n_collapsed": fit.n_collapsed}
        for column in ("beta_silent", "beta_decisive", "difference"):
            row |= interval_columns(column, getattr(fit, column))
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

