"""Verdicts on the collapse itself: the cliff edge (C1), representation similarity (C2), random controls (R3).

Each ``verdict_*`` takes results objects (``pruning.Trace``, tables from ``Experiments``)
and applies a rule fixed here, before any data is seen:

- **Collapse.** The collapse step s* of a trace is ``stats.collapse_point`` with chance =
  accuracy of the best constant answer and margin = ``collapse_margin`` (at least 2.5
  standard errors of accuracy at chance, as ``collapse_point`` recommends). A trace whose
  intact accuracy is not above chance + margin has nothing to collapse: every verdict is
  then "inconclusive". The interval of s* is a percentile item bootstrap whose ends are
  stable: the resamples are doubled (from the profile's count, up to ``MAX_COLLAPSE_RESAMPLES``)
  until the interval of ``STABILITY_SEEDS`` further bootstrap seeds lies within
  ``STEP_TOLERANCE`` steps of it at both ends (the ends of a step interval jump when a few
  resamples cross late; 1,000 resamples put the main model's upper end anywhere from 11 to 16).
- **C1, cliff vs slope.** A linear decline from intact accuracy to the collapse level over
  s* steps drops D / s* per step (D = acc[0] - acc[s*]). A cliff is a single step that drops
  more than ``CLIFF_FACTOR`` (k = 3) times that. Statistic: excess = largest one-step drop
  among steps 1..s* minus k * D / s*, a mean of per-item terms, so its interval is the paired
  item bootstrap (BCa) of those terms. Supported: interval above 0; not supported: estimate
  <= 0; else inconclusive. A collapse within the first k steps cannot pass (no plateau).
- **C2, similarity at the collapse.** Linear CKA between pruned and intact final states at
  s*, and its range over the item-bootstrap interval of s*. Supported: CKA >= ``CKA_THRESHOLD``
  (0.8) over that whole range; not supported: below it over the whole range; else inconclusive.
- **R3, decision-specific collapse.** The LM loss on plain text has a cliff when its largest
  one-step increase is >= k times its mean per-step increase over the trace. The collapse is
  generic (not supported) when that loss cliff falls inside the interval of s*; specific
  (supported) otherwise. The random-layer baseline (area between the iterative and the
  random accuracy curves, two-level bootstrap over seeds and items) is reported beside it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from layercollapse.claims.verdicts import Verdict, interval_status, lies_above, verdict_rule
from layercollapse.measures import metrics, stats

__all__ = [
    "CLIFF_FACTOR",
    "CKA_THRESHOLD",
    "collapse_margin",
    "locate_collapse",
    "schedule_curves",
    "collapse_markers",
    "similarity_curves",
    "loss_curves",
    "area_between",
    "schedule_comparison",
    "describe_comparison",
    "verdict_c1",
    "verdict_c2",
    "verdict_r3",
]

CLIFF_FACTOR = 3.0  # a cliff step drops > 3x the per-step drop of a linear decline over the same range
CKA_THRESHOLD = 0.8  # "similarity stays high": linear CKA at or above this at the collapse step
MIN_MARGIN = 0.05  # accuracy units: the smallest margin above chance that counts as collapsed
STEP_TOLERANCE = 1  # steps: how far either end of a collapse interval may move with the bootstrap seed
STABILITY_SEEDS = 3  # further bootstrap seeds the interval is checked against
MAX_COLLAPSE_RESAMPLES = 128_000  # the doubling stops here (the interval is then reported as it is)


def collapse_margin(chance: float, n_items: int) -> float:
    """Margin above chance under which accuracy counts as collapsed: max(0.05, 2.5 SE of accuracy at chance)."""
    return max(MIN_MARGIN, 2.5 * float(np.sqrt(chance * (1 - chance) / n_items)))


@dataclass(frozen=True)
class Collapse:
    """Where a trace collapses, and whether it could.

    Attributes:
        result: ``stats.CollapseResult`` of the trace (step, step CI, per-step band).
        chance: accuracy of the best constant answer.
        margin: accuracy units above chance still counted as collapsed.
        intact_above: intact accuracy (step 0) exceeds chance + margin: there is something to collapse.
        n_resamples: item resamples behind the step's interval (enough for its ends to be stable).
        stable: whether its ends agreed within ``STEP_TOLERANCE`` over ``STABILITY_SEEDS`` more seeds.
    """

    result: stats.CollapseResult
    chance: float
    margin: float
    intact_above: bool
    n_resamples: int = 0
    stable: bool = True

    @property
    def step(self) -> int | None:
        return self.result.step if self.intact_above else None

    @property
    def step_ci(self) -> tuple[int, int] | None:
        """Item-bootstrap interval of the step; the step itself when the bootstrap found none."""
        if self.step is None:
            return None
        return self.result.index_ci or (self.step, self.step)

    def describe(self) -> str:
        """One sentence on where (or why not) the trace collapses."""
        accuracy = self.result.accuracy
        if not self.intact_above:
            return (f"The intact model's accuracy ({accuracy[0]:.3f}) is not above chance + margin "
                    f"({self.chance:.3f} + {self.margin:.3f}), so there is no collapse to measure.")
        if self.step is None:
            return (f"Accuracy never stays at or below chance + margin ({self.chance + self.margin:.3f}) "
                    f"to the end of the trace: no collapse point.")
        low, high = self.step_ci
        return (f"Accuracy falls from {accuracy[0]:.3f} to {accuracy[self.step]:.3f} and stays at or below "
                f"chance + margin ({self.chance + self.margin:.3f}) from step {self.step} "
                f"({self.result.fraction_removed:.0%} of layers removed; 95% CI steps {low}-{high}, "
                f"{self.n_resamples:,} item resamples).")


def locate_collapse(trace, chance: float, n_resamples: int = 1000, seed: int = 0) -> Collapse:
    """Collapse point of a trace (``stats.collapse_point`` with ``collapse_margin``) and whether it is measurable.

    Args:
        trace: ``pruning.Trace`` (scores [n_steps, n_items, n_options], gold, fraction_removed).
        chance: accuracy of the best constant answer (``metrics.chance_accuracy``).
        n_resamples, seed: item bootstrap of the collapse step.
    """
    correct = metrics.correct(trace.scores, trace.gold)  # [n_steps, n_items]
    margin = collapse_margin(chance, correct.shape[1])

    def point(n: int, bootstrap_seed: int) -> stats.CollapseResult:
        return stats.collapse_point(trace.fraction_removed, correct, chance, margin=margin, n_resamples=n,
                                    seed=bootstrap_seed)

    n = n_resamples
    while True:
        result = point(n, seed)
        stable = all(_within(point(n, seed + 1 + i).index_ci, result.index_ci) for i in range(STABILITY_SEEDS))
        if stable or n >= MAX_COLLAPSE_RESAMPLES:
            break
        n = min(2 * n, MAX_COLLAPSE_RESAMPLES)
    return Collapse(result, float(chance), margin, bool(result.accuracy[0] > chance + margin), n, stable)


def _within(interval: tuple[int, int] | None, reference: tuple[int, int] | None) -> bool:
    """Both ends of ``interval`` within ``STEP_TOLERANCE`` of ``reference`` (or both missing)."""
    if interval is None or reference is None:
        return interval is reference
    return all(abs(end - ref) <= STEP_TOLERANCE for end, ref in zip(interval, reference))


def trace_chance(trace) -> float:
    """Chance level of a trace's evaluation items: the accuracy of the best constant answer."""
    return metrics.chance_accuracy(trace.gold, trace.scores.shape[-1])


def collapse_summary(trace, collapse: Collapse, verdict: Verdict) -> dict[str, Any]:
    """One row of a chapter's per-model table: where ``trace`` collapses (``collapse``: its :func:`locate_collapse`)
    and what the chapter's verdict on it says.

    Returns:
        model, n_layers, n_items, intact accuracy, chance, collapse step with its item-bootstrap interval (NaN
        without a collapse), the fraction of layers removed there, and the verdict's status, value and interval.
    """
    step, (low, high) = collapse.step, collapse.step_ci or (None, None)
    ci = verdict.ci or (None, None)
    return {"model": trace.spec.get("model"), "n_layers": trace.n_layers, "n_items": len(trace.gold),
            "intact_accuracy": float(collapse.result.accuracy[0]), "chance": collapse.chance,
            "collapse_step": step, "step_low": low, "step_high": high,
            "fraction_at_collapse": None if step is None else float(trace.fraction_removed[step]),
            "status": verdict.status, "value": verdict.value, "value_low": ci[0], "value_high": ci[1]}


# ------------------------------------------------------------------------- tables for the figures


def _single_trace_rows(trace, schedule: str, confidence: float, n_resamples: int, seed: int) -> list[dict]:
    correct = metrics.correct(trace.scores, trace.gold)  # [n_steps, n_items]
    margins = metrics.decision_margin(trace.scores, trace.gold)  # [n_steps, n_items]
    n_items = correct.shape[1]
    low, high = stats.accuracy_band(correct.sum(axis=1), n_items, confidence)
    rows = []
    for step in range(trace.n_steps):
        dm = stats.bootstrap_ci(margins[step], confidence=confidence, n_resamples=n_resamples,
                                method="percentile", seed=seed)
        common = {"schedule": schedule, "step": step, "n_removed": int(trace.n_removed[step]),
                  "fraction_removed": float(trace.fraction_removed[step]), "n": n_items,
                  "interval": "95% item bootstrap", "model": trace.spec["model"], "task": trace.spec["task"]}
        rows.append({**common, "metric": "accuracy", "value": correct[step].mean(), "low": low[step],
                     "high": high[step]})
        rows.append({**common, "metric": "mean DM", "value": dm.estimate, "low": dm.low, "high": dm.high})
    return rows


def _seed_rows(traces: Sequence, schedule: str) -> list[dict]:
    first = traces[0]
    if any(t.n_steps != first.n_steps for t in traces):
        raise ValueError(f"{schedule}: traces over seeds have different numbers of steps")
    rows = []
    for metric, values in (("accuracy", [t.accuracy() for t in traces]), ("mean DM", [t.mean_dm() for t in traces])):
        summary = stats.seed_summary(np.stack(values))  # each float [n_steps]
        for step in range(first.n_steps):
            rows.append({"schedule": schedule, "step": step, "n_removed": int(first.n_removed[step]),
                         "fraction_removed": float(first.fraction_removed[step]), "n": summary["n_runs"],
                         "interval": f"2.5-97.5 percentile over {summary['n_runs']} seeds",
                         "model": first.spec["model"], "task": first.spec["task"], "metric": metric,
                         "value": summary["mean"][step], "low": summary["low"][step], "high": summary["high"][step]})
    return rows


def schedule_curves(traces: Mapping[str, object], confidence: float = 0.95, n_resamples: int = 1000,
                    seed: int = 0) -> pd.DataFrame:
    """Accuracy and mean DM with intervals at every step of each schedule, in one long table.

    Args:
        traces: schedule name -> one ``Trace`` (intervals: item bootstrap; accuracy in closed form,
            ``stats.accuracy_band``; mean DM by percentile bootstrap) or a list of traces over seeds
            (mean and 2.5-97.5 percentile band over seeds, ``stats.seed_summary``).

    Returns:
        One row per (schedule, metric, step): schedule, metric ("accuracy" | "mean DM"), step, n_removed,
        fraction_removed, value, low, high, n (items or seeds), interval, model, task.
    """
    rows = []
    for schedule, trace in traces.items():
        if isinstance(trace, Sequence):
            rows += _seed_rows(trace, schedule)
        else:
            rows += _single_trace_rows(trace, schedule, confidence, n_resamples, seed)
    return pd.DataFrame(rows)


def collapse_markers(collapse: Collapse, trace) -> pd.DataFrame:
    """Collapse point as a one-row table for a rule and a band: fraction, fraction_low/high, step, step CI."""
    if collapse.step is None:
        return pd.DataFrame(columns=["fraction_removed", "fraction_low", "fraction_high", "step", "step_ci"])
    low, high = collapse.step_ci
    fraction = trace.fraction_removed
    return pd.DataFrame([{"fraction_removed": fraction[collapse.step], "fraction_low": fraction[low],
                          "fraction_high": fraction[high], "step": collapse.step, "step_ci": f"{low}-{high}"}])


def similarity_curves(trace, similarity: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Accuracy (item-bootstrap band), linear CKA and mean cosine at every step of a trace, long format.

    Args:
        similarity: ``Experiments.similarity_along(trace)``: step, cka, cosine (one value per step; no
            interval: CKA is not a mean over items, so its low = high = value).

    Returns:
        One row per (measure, step): measure, step, n_removed, fraction_removed, value, low, high, model, task.
    """
    correct = metrics.correct(trace.scores, trace.gold)  # [n_steps, n_items]
    low, high = stats.accuracy_band(correct.sum(axis=1), correct.shape[1], confidence)
    base = pd.DataFrame({"step": np.arange(trace.n_steps), "n_removed": trace.n_removed,
                         "fraction_removed": trace.fraction_removed, "model": trace.spec["model"],
                         "task": trace.spec["task"]})
    frames = [base.assign(measure="accuracy", value=correct.mean(axis=1), low=low, high=high)]
    table = similarity.set_index("step").reindex(base["step"])
    for measure, column in (("linear CKA", "cka"), ("cosine", "cosine")):
        values = table[column].to_numpy(dtype=np.float64)
        frames.append(base.assign(measure=measure, value=values, low=values, high=values))
    return pd.concat(frames, ignore_index=True)


def loss_curves(losses: Mapping[str, np.ndarray | Sequence[np.ndarray]], traces: Mapping[str, object]) -> pd.DataFrame:
    """LM loss (nats/token) and perplexity at every step, one series per schedule.

    Args:
        losses: schedule -> float [n_steps] (one trace), or a list of them over seeds (mean and
            2.5-97.5 percentile band over seeds).
        traces: schedule -> the trace (or list of traces) the losses belong to (for fraction_removed).

    Returns:
        One row per (schedule, step): schedule, step, n_removed, fraction_removed, loss, low, high,
        perplexity (exp of the loss), n_runs, model.
    """
    frames = []
    for schedule, values in losses.items():
        trace = traces[schedule][0] if isinstance(traces[schedule], Sequence) else traces[schedule]
        stacked = np.atleast_2d(np.asarray(values, dtype=np.float64))  # [n_seeds, n_steps]
        summary = stats.seed_summary(stacked)
        frames.append(pd.DataFrame({
            "schedule": schedule, "step": np.arange(trace.n_steps), "n_removed": trace.n_removed,
            "fraction_removed": trace.fraction_removed, "loss": summary["mean"], "low": summary["low"],
            "high": summary["high"], "perplexity": np.exp(summary["mean"]), "n_runs": summary["n_runs"],
            "model": trace.spec["model"]}))
    return pd.concat(frames, ignore_index=True)


def area_between(iterative, randoms: Sequence, confidence: float = 0.95, n_resamples: int = 2000,
                 seed: int = 0) -> stats.Interval:
    """Area between the iterative and the mean random-layer accuracy curves over the fraction removed.

    area = integral over fraction removed of (acc_iterative - mean over seeds acc_random) (trapezoid rule),
    in accuracy x fraction units (0.1 = ten points better over the whole range). Interval: two-level
    percentile bootstrap, resampling random seeds and (jointly for both curves) evaluation items.

    Args:
        iterative: the iterative ``Trace``; randoms: random-order traces over seeds, same items and steps.
    """
    fraction = iterative.fraction_removed  # [n_steps]
    correct_iterative = metrics.correct(iterative.scores, iterative.gold).astype(np.float64)  # [n_steps, n_items]
    correct_random = np.stack([metrics.correct(t.scores, t.gold) for t in randoms]).astype(np.float64)
    if correct_random.shape[1:] != correct_iterative.shape or any(
            not np.array_equal(t.gold, iterative.gold) or not np.allclose(t.fraction_removed, fraction)
            for t in randoms):
        raise ValueError("random traces must share the iterative trace's items and steps")
    n_seeds, _, n_items = correct_random.shape

    def area(acc_iterative: np.ndarray, acc_random: np.ndarray) -> np.ndarray:
        return np.trapezoid(acc_iterative - acc_random, fraction, axis=-1)

    estimate = float(area(correct_iterative.mean(axis=1), correct_random.mean(axis=(0, 2))))
    rng = np.random.default_rng(seed)
    item_weights = stats.resample_counts(n_items, n_resamples, rng) / n_items  # [R, N]
    seed_weights = stats.resample_counts(n_seeds, n_resamples, rng) / n_seeds  # [R, S]
    acc_iterative = item_weights @ correct_iterative.T  # [R, n_steps]
    acc_random = np.einsum("rn,stn,rs->rt", item_weights, correct_random, seed_weights)  # [R, n_steps]
    low, high = stats.percentile_interval(area(acc_iterative, acc_random), confidence)
    return stats.Interval(estimate, float(low), float(high), confidence, "two-level percentile bootstrap", n_items)


def schedule_comparison(traces: Mapping[str, object], chance: float, reference: str = "decisive_first",
                        confidence: float = 0.95, n_resamples: int = 2000, seed: int = 0) -> pd.DataFrame:
    """How long each schedule holds accuracy, and how it compares with ``reference`` at equal removed fractions.

    Args:
        traces: schedule name -> one ``Trace`` of the same model, items and steps (every schedule
            removes step/n_layers of the layers at step s, so steps are equal removed fractions).
        chance: accuracy of the best constant answer.

    Returns:
        One row per schedule, ``reference`` first: schedule, collapse_step, step_low, step_high (item
        bootstrap), fraction_at_collapse, accuracy_half (accuracy with half the layers removed), and area
        (reference minus schedule, :func:`area_between`: accuracy x fraction over the whole trace; 0.1 = ten
        points better throughout) with area_low/high; NaN for the reference itself.
    """
    if reference not in traces:
        raise ValueError(f"reference schedule {reference!r} is not among the traces {list(traces)}")
    rows = []
    for schedule in sorted(traces, key=lambda name: name != reference):
        trace = traces[schedule]
        collapse = locate_collapse(trace, chance, n_resamples=n_resamples, seed=seed)
        half = int(np.searchsorted(trace.fraction_removed, 0.5))
        area = (None if schedule == reference
                else area_between(traces[reference], [trace], confidence, n_resamples, seed))
        rows.append({"schedule": schedule, "collapse_step": collapse.step,
                     "step_low": collapse.step_ci[0] if collapse.step_ci else None,
                     "step_high": collapse.step_ci[1] if collapse.step_ci else None,
                     "fraction_at_collapse": (float(trace.fraction_removed[collapse.step])
                                              if collapse.step is not None else np.nan),
                     "accuracy_half": float(trace.accuracy()[min(half, trace.n_steps - 1)]),
                     **({"area": np.nan, "area_low": np.nan, "area_high": np.nan} if area is None else
                        {"area": area.estimate, "area_low": area.low, "area_high": area.high}),
                     "model": trace.spec["model"], "task": trace.spec["task"]})
    table = pd.DataFrame(rows)
    for name in ("collapse_step", "step_low", "step_high"):
        table[name] = table[name].astype("Int64")
    return table


def describe_comparison(table: pd.DataFrame, against: str, names: Mapping[str, str] | None = None) -> str:
    """One sentence comparing the reference schedule (first row of :func:`schedule_comparison`) with ``against``:
    where each collapses, and the area between their accuracy curves with its interval."""
    names = dict(names or {})
    rows = table.set_index("schedule")
    reference, other = table["schedule"].iloc[0], against
    if other not in rows.index:
        return f"{names.get(other, other)} was not run, so it cannot be compared."

    def where(schedule: str) -> str:
        row = rows.loc[schedule]
        if pd.isna(row["collapse_step"]):
            return f"{names.get(schedule, schedule)} does not collapse"
        return (f"{names.get(schedule, schedule)} collapses at step {int(row['collapse_step'])} "
                f"(95% CI {int(row['step_low'])}–{int(row['step_high'])})")

    area = rows.loc[other]
    sign = "better" if area["area_low"] > 0 else "worse" if area["area_high"] < 0 else "not distinguishable"
    return (f"{where(reference)} and {where(other)}; over the whole trace {names.get(reference, reference)} is "
            f"{sign} (area between the accuracy curves {area['area']:.3f}, 95% CI "
            f"[{area['area_low']:.3f}, {area['area_high']:.3f}])")


# -------------------------------------------------------------------------------------- verdicts


@verdict_rule
def verdict_c1(trace, chance: float, factor: float = CLIFF_FACTOR, n_resamples: int = 1000,
               seed: int = 0) -> Verdict:
    """C1: is the iterative trace's decline to chance a cliff (one step carries it) or a slope?

    Rule (module docstring): excess = max one-step drop over steps 1..s* - factor * (acc[0] - acc[s*]) / s*,
    paired item bootstrap (BCa) of its per-item terms; supported when the interval lies above 0,
    not supported when the estimate is <= 0 or there is no collapse, inconclusive otherwise.
    """
    model = trace.spec.get("model")  # the verdict is decided on this model's trace
    collapse = locate_collapse(trace, chance, n_resamples, seed)
    correct = metrics.correct(trace.scores, trace.gold).astype(np.float64)  # [n_steps, n_items]
    n_items = correct.shape[1]
    statistic = f"largest one-step accuracy drop - {factor:g} x mean per-step drop to the collapse step"
    if not collapse.intact_above:
        return Verdict("C1", "inconclusive", statistic, None, collapse.describe(), n=n_items, model=model)
    if collapse.step is None:
        return Verdict("C1", "not supported", statistic, None,
                       collapse.describe() + " Iterative pruning degrades this model without collapsing it.",
                       n=n_items, model=model)
    s = collapse.step
    accuracy = correct.mean(axis=1)
    drops = accuracy[:-1] - accuracy[1:]  # drops[t - 1] = acc[t - 1] - acc[t]
    cliff = int(np.argmax(drops[:s])) + 1  # step with the largest drop, in 1..s
    terms = (correct[cliff - 1] - correct[cliff]) - factor / s * (correct[0] - correct[s])  # [n_items]
    excess = stats.bootstrap_ci(terms, n_resamples=n_resamples, seed=seed)
    mean_drop = (accuracy[0] - accuracy[s]) / s
    detail = (f"{collapse.describe()} The largest one-step drop is {drops[cliff - 1]:.3f} at step {cliff} "
              f"({trace.fraction_removed[cliff]:.0%} removed); a linear decline over the same {s} step(s) "
              f"would drop {mean_drop:.3f} per step, so a cliff needs more than {factor:g} x {mean_drop:.3f} = "
              f"{factor * mean_drop:.3f}.")
    if lies_above(excess.ci, 0):
        status, verdict = "supported", " The excess is above 0 with its 95% item-bootstrap interval: a cliff."
    elif excess.estimate <= 0:
        status, verdict = "not supported", " The largest step is not larger than that: the decline is a slope."
    else:
        status, verdict = "inconclusive", (" The largest step exceeds it, but the 95% item-bootstrap interval "
                                           "includes 0: too few items to tell a cliff from a slope.")
    return Verdict("C1", status, statistic + " (paired item bootstrap, BCa)", excess.estimate, detail + verdict,
                   ci=(excess.low, excess.high), n=n_items, model=model)


@verdict_rule
def verdict_c2(trace, similarity: pd.DataFrame, chance: float, threshold: float = CKA_THRESHOLD,
               n_resamples: int = 1000, seed: int = 0) -> Verdict:
    """C2: does linear CKA to the intact network stay >= ``threshold`` where accuracy has collapsed?

    Rule: at the collapse step s* of the trace, over the item-bootstrap interval [a, b] of s*:
    supported when min CKA over steps a..b >= threshold; not supported when max < threshold;
    inconclusive otherwise, or when the trace has no measurable collapse.

    Args:
        similarity: ``Experiments.similarity_along(trace)``: step, cka, cosine.
    """
    model = trace.spec.get("model")  # the verdict is decided on this model's trace
    collapse = locate_collapse(trace, chance, n_resamples, seed)
    n_items = len(trace.gold)
    statistic = f"linear CKA (pruned vs intact final states) at the collapse step; threshold {threshold:g}"
    if collapse.step is None:
        return Verdict("C2", "inconclusive", statistic, None,
                       collapse.describe() + " Without a collapse, similarity cannot be compared with it.",
                       n=n_items, model=model)
    table = similarity.set_index("step")
    low_step, high_step = collapse.step_ci
    window = table.loc[low_step:high_step, "cka"]
    cka, cosine = float(table.loc[collapse.step, "cka"]), float(table.loc[collapse.step, "cosine"])
    ci = (float(window.min()), float(window.max()))
    detail = (f"{collapse.describe()} There, linear CKA to the intact network is {cka:.3f} (range {ci[0]:.3f}-"
              f"{ci[1]:.3f} over the collapse step's interval) and mean cosine {cosine:.3f}.")
    status = interval_status(ci, threshold, supported="above")
    verdict = {"supported": f" CKA stays at or above {threshold:g} while accuracy is at chance: similarity does not "
                            "see the collapse.",
               "not supported": f" CKA has fallen below {threshold:g} with accuracy: here similarity does register "
                                "the collapse.",
               "inconclusive": f" CKA crosses {threshold:g} within the collapse step's interval."}[status]
    return Verdict("C2", status, statistic, cka, detail + verdict, ci=ci, n=n_items, model=model)


@verdict_rule
def verdict_r3(iterative, loss: np.ndarray, chance: float, randoms: Sequence = (), factor: float = CLIFF_FACTOR,
               n_resamples: int = 1000, seed: int = 0) -> Verdict:
    """R3: is the accuracy collapse specific to the decision task, or does plain-text LM loss break at the same depth?

    Rule: loss cliff = the largest one-step increase of ``loss`` along the trace is >= factor x its mean
    per-step increase (which must be > 0). Not supported (generic breakdown) when the loss cliff's step
    lies inside the item-bootstrap interval of the accuracy collapse step; supported otherwise;
    inconclusive without a measurable accuracy collapse. Statistic: loss-cliff step - collapse step,
    its interval from the collapse step's. The random-layer area (``area_between``) is reported in the text.

    Args:
        iterative: the iterative ``Trace``; loss: float [n_steps] nats/token along it
            (``Experiments.lm_loss_along``); randoms: random-order traces for the baseline (optional).
    """
    model = iterative.spec.get("model")  # the verdict is decided on this model's trace
    collapse = locate_collapse(iterative, chance, n_resamples, seed)
    loss = np.asarray(loss, dtype=np.float64)
    if loss.shape != (iterative.n_steps,):
        raise ValueError(f"loss has shape {loss.shape}, the trace has {iterative.n_steps} steps")
    n_items = len(iterative.gold)
    statistic = "step of the largest one-step LM-loss increase - accuracy collapse step"
    baseline = ""
    if len(randoms):
        area = area_between(iterative, randoms, n_resamples=n_resamples, seed=seed)
        baseline = (f" Random-layer baseline: the iterative curve lies {area.estimate:+.3f} (accuracy x fraction "
                    f"removed; 95% CI [{area.low:.3f}, {area.high:.3f}], {len(randoms)} seeds) above the mean "
                    f"random-order curve.")
    if collapse.step is None:
        return Verdict("R3", "inconclusive", statistic, None,
                       collapse.describe() + " The LM-loss control needs a collapse to compare with." + baseline,
                       n=n_items, model=model)
    increases = np.diff(loss)  # [n_steps - 1], increases[t - 1] = loss[t] - loss[t - 1]
    jump_step = int(np.argmax(increases)) + 1
    mean_increase = (loss[-1] - loss[0]) / (len(loss) - 1)
    loss_cliff = bool(mean_increase > 0 and increases[jump_step - 1] >= factor * mean_increase)
    low_step, high_step = collapse.step_ci
    same_depth = low_step <= jump_step <= high_step
    s = collapse.step
    detail = (f"{collapse.describe()} On plain text the largest one-step loss increase is "
              f"{increases[jump_step - 1]:.2f} nats/token at step {jump_step} "
              f"({iterative.fraction_removed[jump_step]:.0%} removed; mean increase {mean_increase:.2f} per step, "
              f"so {'a' if loss_cliff else 'no'} loss cliff by the {factor:g}x rule); at the collapse step the "
              f"loss is {loss[s]:.2f} vs {loss[0]:.2f} intact (perplexity x{np.exp(loss[s] - loss[0]):.3g}).")
    if loss_cliff and same_depth:
        status, verdict = "not supported", (" The LM loss breaks at the same depth as accuracy: the collapse is not "
                                            "specific to the decision task.")
    else:
        status, verdict = "supported", (" The LM loss shows no cliff at the collapse depth: the accuracy collapse is "
                                        "specific to the decision task.")
    return Verdict("R3", status, statistic + " (interval from the item bootstrap of the collapse step)",
                   float(jump_step - s), detail + verdict + baseline,
                   ci=(float(jump_step - high_step), float(jump_step - low_step)), n=n_items, model=model)
