"""Verdicts on pruning inside one phase of the intact network: Decisive pruning costs little (C4), Silent pruning
collapses at once (C5).

Each ``verdict_*`` takes the phase-targeted traces (``Experiments.phase_traces``: k = 1 .. K random layers removed
inside one phase, one trace per seed) and the intact network's ``Phases``, and applies a rule fixed here, before any
data is seen. Intervals are 95% BCa item bootstraps unless a docstring says otherwise; accuracies are fractions,
chance = accuracy of the best constant answer.

- **C4, Decisive pruning costs little.** Drop = intact accuracy - seed-mean accuracy with
  k = 1 Decisive layer removed, per item (paired), BCa item bootstrap. Supported: interval
  at or below ``DROP_TOLERANCE`` (0.05); not supported: interval above it; inconclusive
  otherwise, and when there is no Decisive Phase to prune.
- **C5, Silent pruning collapses at once** (amended rule). With k = 1 Silent layer removed, the
  seed-mean accuracy (95% BCa item bootstrap) is compared with the collapse level of C1's rule,
  chance + ``collapse.collapse_margin``. Supported: its interval lies at or below that level; not
  supported: its interval lies above it; inconclusive otherwise, and when there is no transition
  (the Silent Phase is then undefined). The accuracy drop and the McNemar test of Silent against
  Decisive removal (pooled item x seed pairs, Holm-adjusted over k) are reported, not deciding.
- **C5 as first registered** (``verdict_c5_registered``, shown beside the amended rule, never
  recorded): the drop (as in C4) must be significant (interval above 0) and either accuracy's
  interval reaches chance (lower bound <= chance) or the Silent removal is significantly worse
  than the Decisive one (that McNemar test, p < 0.05). Not supported: the drop's interval at or
  below 0.05, or accuracy's interval above chance while Silent removal does no worse than
  Decisive removal. Inconclusive otherwise. Its second clause let C5 ("collapse") pass on a cost
  that is not a collapse, hence the amendment.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from layercollapse.claims.transition import ALPHA, item_counts, mean_ci
from layercollapse.claims.verdicts import Verdict, interval_status, lies_above, lies_below, verdict_rule
from layercollapse.measures import metrics, stats
from layercollapse.measures.stats import interval_text

__all__ = [
    "DROP_TOLERANCE",
    "phase_pruning_table",
    "accuracy_at_k",
    "phase_pruning_tests",
    "verdict_c4",
    "verdict_c5",
    "verdict_c5_registered",
    "c5_summary",
]

DROP_TOLERANCE = 0.05  # "costs little": accuracy drop (fraction) at k = 1


# ------------------------------------------------------------------- C4, C5: phase-targeted pruning


def _correct_by_seed(traces: Sequence) -> np.ndarray:
    """bool [n_seeds, n_steps, n_items] of a list of phase traces (same items, same steps)."""
    return np.stack([metrics.correct(trace.scores, trace.gold) for trace in traces])


def phase_pruning_table(traces_by_phase: Mapping[str, Sequence], n_resamples: int = 1000, seed: int = 0,
                        confidence: float = 0.95) -> pd.DataFrame:
    """Accuracy and mean DM against k (layers removed inside a phase), over seeds and items.

    The seed band is the 2.5-97.5 percentile band across seeds (``stats.seed_summary``); the
    item interval is the percentile item bootstrap of the seed mean (per item: the mean over seeds).

    Args:
        traces_by_phase: {"silent": [Trace per seed], "decisive": [...]} (an empty list is skipped).

    Returns:
        One row per (phase, k): phase, k, accuracy, accuracy_seed_low/high, accuracy_low/high,
        mean_dm, dm_seed_low/high, dm_low/high, n_seeds, n_items, model, task.
    """
    frames = []
    for phase, traces in traces_by_phase.items():
        if not traces:
            continue
        correct = _correct_by_seed(traces).astype(np.float64)  # [n_seeds, n_steps, n_items]
        dm = np.stack([metrics.decision_margin(t.scores, t.gold) for t in traces])  # [n_seeds, n_steps, n_items]
        n_seeds, n_steps, n_items = correct.shape
        weights = item_counts(n_items, n_resamples, seed)
        frame = {"phase": phase, "k": np.arange(n_steps)}
        for name, per_item, seed_col in (("accuracy", correct, "accuracy"), ("mean_dm", dm, "dm")):
            by_seed = per_item.mean(axis=2)  # [n_seeds, n_steps]
            band = stats.seed_summary(by_seed)
            low, high = stats.percentile_interval(weights @ per_item.mean(axis=0).T / n_items, confidence)
            frame |= {name: band["mean"], f"{seed_col}_seed_low": band["low"], f"{seed_col}_seed_high": band["high"],
                      f"{seed_col}_low": low, f"{seed_col}_high": high}
        frame |= {"n_seeds": n_seeds, "n_items": n_items, "model": traces[0].spec.get("model"),
                  "task": traces[0].spec.get("task")}
        frames.append(pd.DataFrame(frame))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def accuracy_at_k(curves: pd.DataFrame, phase: str, k: int) -> tuple[float | None, tuple[float, float] | None]:
    """(seed-mean accuracy, its item-bootstrap interval) of ``phase`` at ``k`` in :func:`phase_pruning_table` rows;
    (None, None) where that phase or k was not run."""
    row = curves[(curves["phase"] == phase) & (curves["k"] == k)] if len(curves) else curves
    if not len(row):
        return None, None
    row = row.iloc[0]
    return float(row["accuracy"]), (float(row["accuracy_low"]), float(row["accuracy_high"]))


def phase_pruning_tests(silent: Sequence, decisive: Sequence, n_resamples: int = 1000, seed: int = 0,
                        confidence: float = 0.95, alpha: float = ALPHA) -> pd.DataFrame:
    """Silent vs Decisive removal at each k >= 1: paired item bootstrap and McNemar with Holm over k.

    Seeds are paired by position; McNemar pools the (item, seed) pairs (pairs that share an item
    are not independent, so its p-value is optimistic when seeds agree); the bootstrap interval of
    the difference resamples items (each item's seed-mean correctness), which respects that.

    Returns:
        One row per k: k, accuracy_silent, accuracy_decisive, difference (decisive - silent),
        difference_low/high, mcnemar_statistic, p, p_holm, reject, test, n_pairs.
    """
    if not silent or not decisive:
        return pd.DataFrame(columns=["k", "accuracy_silent", "accuracy_decisive", "difference", "difference_low",
                                     "difference_high", "mcnemar_statistic", "p", "p_holm", "reject", "test",
                                     "n_pairs"])
    n_seeds = min(len(silent), len(decisive))
    a, b = _correct_by_seed(silent[:n_seeds]), _correct_by_seed(decisive[:n_seeds])  # [n_seeds, n_steps, n_items]
    if not np.array_equal(silent[0].gold, decisive[0].gold):
        raise ValueError("Silent and Decisive traces are not on the same items")
    n_steps = min(a.shape[1], b.shape[1])
    rows = []
    for k in range(1, n_steps):
        test = stats.mcnemar_test(a[:, k].reshape(-1), b[:, k].reshape(-1))
        difference = stats.paired_bootstrap_ci(b[:, k].mean(axis=0), a[:, k].mean(axis=0), confidence=confidence,
                                               n_resamples=n_resamples, seed=seed)
        rows.append({"k": k, "accuracy_silent": a[:, k].mean(), "accuracy_decisive": b[:, k].mean(),
                     "difference": difference.estimate, "difference_low": difference.low,
                     "difference_high": difference.high, "mcnemar_statistic": test.statistic, "p": test.pvalue,
                     "test": f"McNemar ({test.method})", "n_pairs": a[:, k].size})
    table = pd.DataFrame(rows)
    table["reject"], table["p_holm"] = stats.holm(table["p"].to_numpy(), alpha)
    return table[["k", "accuracy_silent", "accuracy_decisive", "difference", "difference_low", "difference_high",
                  "mcnemar_statistic", "p", "p_holm", "reject", "test", "n_pairs"]]


def _drop_at_k1(traces: Sequence, n_resamples: int, seed: int, confidence: float) -> tuple[float, float, float]:
    """Intact accuracy - seed-mean accuracy with one layer removed: per item, BCa item bootstrap."""
    correct = _correct_by_seed(traces).astype(np.float64)  # [n_seeds, n_steps, n_items]
    return mean_ci(correct[0, 0] - correct[:, 1].mean(axis=0), n_resamples, seed, confidence)


@verdict_rule
def verdict_c4(decisive: Sequence, phases, tolerance: float = DROP_TOLERANCE, n_resamples: int = 1000,
               seed: int = 0, confidence: float = 0.95) -> Verdict:
    """C4: removing one Decisive-Phase layer costs at most ``tolerance`` accuracy (rule: module docstring)."""
    statistic = "accuracy drop at k = 1 (Decisive)"
    if phases.layer is None or not decisive or decisive[0].n_steps < 2:
        return Verdict("C4", "inconclusive", statistic, None, n=0,
                       text="The intact network has no Decisive Phase (no transition), so Decisive pruning cannot be tested.")
    drop = _drop_at_k1(decisive, n_resamples, seed, confidence)
    status = interval_status(drop[1:], tolerance, supported="below")
    n_items = len(decisive[0].gold)
    intact = metrics.accuracy(decisive[0].scores[0], decisive[0].gold)
    text = (f"Removing one random layer of the Decisive Phase (layers {phases.decisive[0]}–{phases.decisive[-1]}) "
            f"of {decisive[0].spec.get('model')} changes accuracy from {intact:.2f} by a drop of {interval_text(drop)} "
            f"(mean over {len(decisive)} seeds; 95% BCa item bootstrap, {n_items} items); "
            f"'costs little' means the interval lies at or below {tolerance}.")
    return Verdict("C4", status, statistic, drop[0], text, ci=drop[1:], n=n_items)


@dataclass(frozen=True)
class _SilentK1:
    """What both C5 rules read at k = 1: the seed-mean Silent accuracy and drop (estimate, low, high), the number of
    items, and the Silent-vs-Decisive McNemar row (``first``: empty without a Decisive Phase) with its Holm p."""

    accuracy: tuple
    drop: tuple
    n_items: int
    first: pd.DataFrame
    p: float | None


C5_STATISTIC = "accuracy at k = 1 (Silent)"
C5_UNDEFINED = "The intact network has no transition, so its Silent Phase is undefined and C5 cannot be tested."


def _silent_k1(silent: Sequence, decisive: Sequence, phases, tests: pd.DataFrame | None, n_resamples: int, seed: int,
               confidence: float) -> _SilentK1 | None:
    """:class:`_SilentK1` of the Silent traces, or None when there is no transition (no Silent Phase) or no k = 1."""
    if phases.layer is None or not silent or silent[0].n_steps < 2:
        return None
    if tests is None:
        tests = phase_pruning_tests(silent, decisive, n_resamples, seed, confidence)
    correct = _correct_by_seed(silent).astype(np.float64)
    first = tests[tests["k"] == 1]
    return _SilentK1(mean_ci(correct[:, 1].mean(axis=0), n_resamples, seed, confidence),
                     _drop_at_k1(silent, n_resamples, seed, confidence), correct.shape[2], first,
                     float(first["p_holm"].iloc[0]) if len(first) else None)


@verdict_rule
def verdict_c5(silent: Sequence, decisive: Sequence, phases, tests: pd.DataFrame | None = None,
               n_resamples: int = 1000, seed: int = 0, confidence: float = 0.95) -> Verdict:
    """C5 (amended rule): removing one Silent-Phase layer collapses accuracy, by C1's collapse level (module
    docstring).

    Args:
        tests: ``phase_pruning_tests(silent, decisive)`` (reported in the text); computed here when None.
    """
    from layercollapse.claims.collapse import collapse_margin

    read = _silent_k1(silent, decisive, phases, tests, n_resamples, seed, confidence)
    if read is None:
        return Verdict("C5", "inconclusive", C5_STATISTIC, None, n=0, text=C5_UNDEFINED)
    accuracy, drop, n_items, p = read.accuracy, read.drop, read.n_items, read.p
    level = phases.chance + collapse_margin(phases.chance, n_items)
    if accuracy[2] <= level:
        status = "supported"
    elif accuracy[1] > level:
        status = "not supported"
    else:
        status = "inconclusive"
    versus = _versus_text(p, " (reported, not deciding)")
    text = (f"Removing one random Silent-Phase layer (layers {phases.silent[0]}–{phases.silent[-1]}) of "
            f"{silent[0].spec.get('model')}: accuracy {interval_text(accuracy)} (mean over {len(silent)} seeds; 95% "
            f"BCa item bootstrap, {n_items} items) against the collapse level {level:.3f} (chance {phases.chance:.2f} "
            f"+ C1's margin); drop from intact {interval_text(drop)}; {versus}.")
    return Verdict("C5", status, C5_STATISTIC, accuracy[0], text, ci=accuracy[1:], n=n_items, p=p)


def _versus_text(p: float | None, note: str = "") -> str:
    """The McNemar comparison of a Silent with a Decisive removal at k = 1, as both C5 rules' texts say it."""
    return ("no Decisive Phase to compare with" if p is None else
            f"Silent vs Decisive removal at k = 1{note}: McNemar on pooled item x seed pairs, Holm-adjusted p = {p:.3g}")


def c5_summary(amended: Verdict, first: Verdict, phases) -> str:
    """One sentence on C5 for the chapter's prose: the accuracy after one Silent layer against the collapse level,
    both rules' statuses, and whether Silent and Decisive removal differ significantly."""
    from layercollapse.claims.collapse import collapse_margin

    if not amended.n or amended.value is None:
        return f"C5 is *{amended.status}*: {amended.text}"
    level = phases.chance + collapse_margin(phases.chance, amended.n)
    if amended.p is None:
        cost = "there is no Decisive Phase to compare a Silent removal with"
    else:
        how = "significantly" if amended.p < ALPHA else "not significantly"
        cost = f"Silent and Decisive removal differ {how} (Holm-adjusted McNemar p = {amended.p:.2g})"
    outcome = {"supported": "one Silent layer collapses the model",
               "not supported": "one Silent layer does not collapse the model"}.get(
        amended.status, "whether one Silent layer collapses the model is not resolved")
    return (f"removing one random Silent layer leaves an accuracy of {interval_text((amended.value, *amended.ci))} "
            f"against a collapse level of {level:.3f}, so C5 is *{amended.status}* and {outcome}; {cost}. The first "
            f"registered rule, which also counted a significant difference from the Decisive removal, said *{first.status}*.")


@verdict_rule
def verdict_c5_registered(silent: Sequence, decisive: Sequence, phases, tests: pd.DataFrame | None = None,
                          tolerance: float = DROP_TOLERANCE, n_resamples: int = 1000, seed: int = 0,
                          confidence: float = 0.95) -> Verdict:
    """C5 as first registered (module docstring): kept to be shown beside the amended :func:`verdict_c5`, never
    recorded in the ledger.

    Args:
        tests: ``phase_pruning_tests(silent, decisive)``; computed here when None.
    """
    read = _silent_k1(silent, decisive, phases, tests, n_resamples, seed, confidence)
    if read is None:
        return Verdict("C5", "inconclusive", C5_STATISTIC, None, n=0, text=C5_UNDEFINED)
    accuracy, drop, n_items, first, p = read.accuracy, read.drop, read.n_items, read.first, read.p
    worse = bool(len(first) and first["difference"].iloc[0] > 0)  # decisive - silent > 0
    significant_worse = bool(worse and p is not None and p < ALPHA)
    to_chance = accuracy[1] <= phases.chance
    if lies_above(drop[1:], 0) and (to_chance or significant_worse):
        status = "supported"
    elif lies_below(drop[1:], tolerance, strict=False) or (accuracy[1] > phases.chance and not worse):
        status = "not supported"
    else:
        status = "inconclusive"
    versus = _versus_text(p)
    text = (f"Removing one random Silent-Phase layer (layers {phases.silent[0]}–{phases.silent[-1]}) of "
            f"{silent[0].spec.get('model')}: accuracy {interval_text(accuracy)} against chance {phases.chance:.2f}, "
            f"drop from intact {interval_text(drop)} (mean over {len(silent)} seeds; 95% BCa item bootstrap, "
            f"{n_items} items); {versus}.")
    return Verdict("C5", status, C5_STATISTIC, accuracy[0], text, ci=accuracy[1:], n=n_items, p=p)
