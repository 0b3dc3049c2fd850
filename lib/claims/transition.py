"""Verdicts on the decision transition of the intact network: its sharpness (C3a), Option Frequency (C3b) and the
tuned-lens control (R2). Pruning inside one phase (C4, C5) is ``claims.phase_pruning``'s.

Each ``verdict_*`` takes results objects (``experiments.Readout``, ``experiments.Phases``,
lists of ``pruning.Trace``) and applies a rule fixed here, before any data is seen.
Intervals are 95% percentile item bootstraps unless a docstring says otherwise; all
accuracies are fractions, chance = accuracy of the best constant answer.

- **Transition window.** For a transition at layer t of an L-layer network, the window
  spans layers t - h .. t + h with h = floor(``WINDOW_FRACTION`` * L) (0.05: one layer
  for L < 20, three for 20 <= L < 40); it is read from the readout row before layer t - h
  to the row after layer t + h.
- **C3a, sharp transition.** Sharpness = accuracy gained across the window / accuracy
  gained from the embeddings to the final layer. Supported: a transition exists with a
  non-empty Silent Phase, the mean DM rises across the window (interval of the rise above
  0) and sharpness's interval lies at or above ``SHARPNESS_THRESHOLD`` (0.5). Not supported:
  no transition (or none with a Silent Phase), or the DM-rise interval at or below 0, or
  sharpness's interval below 0.5. Otherwise inconclusive.
- **C3b, collapse onto one option.** Mean over Silent-Phase layers of the largest option
  frequency (max OF), and mean over Decisive-Phase layers of the total-variation distance
  between OF and the gold-position distribution (TV). Supported: max OF interval at or
  above ``MAX_OF_THRESHOLD`` (0.8) and TV interval at or below ``TV_THRESHOLD`` (0.2). Not
  supported: no transition with both phases non-empty, or max OF interval below 0.8, or TV
  interval above 0.2. Otherwise inconclusive.
- **R2, transition inside the network.** The tuned-lens transition layer (same rule,
  same items and resamples) is compared with the logit-lens one. Gap = logit layer - tuned
  layer (positive: the tuned lens reads the answer earlier); its interval pairs the two
  bootstraps resample by resample. Supported: both lenses find a transition, their layer
  intervals overlap and the gap is at most ``EARLIER_FRACTION`` (0.1) * L layers. Not
  supported: neither lens finds one, or the gap exceeds the tolerance with disjoint
  intervals. Otherwise inconclusive.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from layercollapse.claims.verdicts import Verdict, all_of, interval_status, lies_above, lies_below, verdict_rule
from layercollapse.measures import metrics, stats
from layercollapse.measures.stats import interval_text

__all__ = [
    "WINDOW_FRACTION",
    "SHARPNESS_THRESHOLD",
    "MAX_OF_THRESHOLD",
    "TV_THRESHOLD",
    "EARLIER_FRACTION",
    "ALPHA",
    "OPTION_LETTERS",
    "depth_table",
    "readout_table",
    "trace_table",
    "option_frequency_frame",
    "gold_frequency_frame",
    "transition_window",
    "TransitionAssessment",
    "assess_transition",
    "transition_table",
    "phase_option_frequency",
    "lens_comparison",
    "kl_frame",
    "verdict_c3a",
    "verdict_c3b",
    "verdict_r2",
]

WINDOW_FRACTION = 0.05  # half-width of the transition window, as a fraction of depth
SHARPNESS_THRESHOLD = 0.5  # share of the total accuracy gain that a sharp transition makes in its window
MAX_OF_THRESHOLD = 0.8  # "most items on one option": mean max option frequency over Silent layers
TV_THRESHOLD = 0.2  # "close to the gold distribution": mean total-variation distance over Decisive layers
EARLIER_FRACTION = 0.1  # "much earlier": tuned-lens transition more than this fraction of depth earlier
ALPHA = 0.05  # family-wise level of the per-k McNemar tests (Holm)
OPTION_LETTERS = "ABCDEFGHIJ"


# ---------------------------------------------------------------------------- bootstrap helpers


def item_counts(n_items: int, n_resamples: int, seed: int) -> np.ndarray:
    """``stats.resample_counts`` of items as float64 [n_resamples, n_items], ready for weighted means."""
    return stats.resample_counts(n_items, n_resamples, seed).astype(np.float64)


def mean_ci(values: np.ndarray, n_resamples: int, seed: int, confidence: float) -> tuple[float, float, float]:
    """(mean, low, high) of per-item values float [n_items]: BCa item bootstrap (``stats.bootstrap_ci``)."""
    interval = stats.bootstrap_ci(np.asarray(values, dtype=np.float64), np.mean, confidence, n_resamples, "BCa", seed)
    return interval.estimate, interval.low, interval.high


def _frequency_stats(predicted: np.ndarray, gold: np.ndarray, n_options: int, weights: np.ndarray | None):
    """Max OF, OF entropy (bits) and TV(OF, gold frequency) per row, optionally per item resample.

    Args:
        predicted: int [n_rows, n_items], predicted option per row (layer / step).
        gold: int [n_items].
        weights: float [n_resamples, n_items] item draw counts, or None for the data itself.

    Returns:
        (max_of, entropy, tv): each float64 [n_rows] (weights None) or [n_resamples, n_rows].
    """
    onehot = (predicted[..., None] == np.arange(n_options)).astype(np.float64)  # [n_rows, n_items, n_options]
    gold_onehot = (gold[:, None] == np.arange(n_options)).astype(np.float64)  # [n_items, n_options]
    if weights is None:
        weights = np.ones((1, predicted.shape[1]))
        squeeze = True
    else:
        squeeze = False
    total = weights.sum(axis=1)[:, None]  # [n_resamples, 1]
    frequency = np.einsum("ri,lio->rlo", weights, onehot) / total[:, :, None]  # [n_resamples, n_rows, n_options]
    gold_frequency = (weights @ gold_onehot) / total  # [n_resamples, n_options]
    max_of = frequency.max(axis=-1)
    entropy = metrics.frequency_entropy(frequency)
    tv = 0.5 * np.abs(frequency - gold_frequency[:, None, :]).sum(axis=-1)
    if squeeze:
        return max_of[0], entropy[0], tv[0]
    return max_of, entropy, tv


# ------------------------------------------------------------------------------- tables


def depth_table(scores: np.ndarray, gold: np.ndarray, n_resamples: int = 1000, seed: int = 0,
                confidence: float = 0.95) -> pd.DataFrame:
    """Per-row (layer or pruning step) accuracy, Decision Margin and Option Frequency with item intervals.

    Accuracy's band is ``stats.accuracy_band`` (closed-form percentile bootstrap, the band the
    transition rule uses); mean DM, max OF, OF entropy and TV to the gold distribution get
    percentile item-bootstrap intervals (one set of item draws for all rows). DM quantiles
    describe the per-item distribution.

    Args:
        scores: float [n_rows, n_items, n_options], option log-scores.
        gold: int [n_items].

    Returns:
        One row per row of ``scores``: row, accuracy, accuracy_low/high, mean_dm, dm_low/high,
        dm_q05, dm_q25, dm_median, dm_q75, dm_q95, max_of(_low/_high), of_entropy(_low/_high)
        (bits), tv_gold(_low/_high), n_items.
    """
    scores, gold = np.asarray(scores), np.asarray(gold)
    n_rows, n_items, n_options = scores.shape
    correct = metrics.correct(scores, gold)  # [n_rows, n_items]
    accuracy = correct.mean(axis=1)
    acc_low, acc_high = stats.accuracy_band(correct.sum(axis=1), n_items, confidence)
    dm = metrics.decision_margin(scores, gold)  # [n_rows, n_items]
    weights = item_counts(n_items, n_resamples, seed)  # [n_resamples, n_items]
    dm_low, dm_high = stats.percentile_interval(weights @ dm.T / n_items, confidence)  # [n_rows]
    predicted = metrics.predictions(scores)  # [n_rows, n_items]
    max_of, entropy, tv = _frequency_stats(predicted, gold, n_options, None)
    resampled = _frequency_stats(predicted, gold, n_options, weights)
    table = pd.DataFrame({"row": np.arange(n_rows), "accuracy": accuracy, "accuracy_low": acc_low,
                          "accuracy_high": acc_high, "mean_dm": dm.mean(axis=1), "dm_low": dm_low, "dm_high": dm_high})
    for name, q in (("dm_q05", 5), ("dm_q25", 25), ("dm_median", 50), ("dm_q75", 75), ("dm_q95", 95)):
        table[name] = np.percentile(dm, q, axis=1)
    for name, value, boot in (("max_of", max_of, resampled[0]), ("of_entropy", entropy, resampled[1]),
                              ("tv_gold", tv, resampled[2])):
        low, high = stats.percentile_interval(boot, confidence)
        table[name], table[f"{name}_low"], table[f"{name}_high"] = value, low, high
    table["n_items"] = n_items
    return table


def _phase_of_layer(layer: int, phases) -> str:
    if layer < 0:
        return "embeddings"
    return "Decisive Phase" if phases.layer is not None and layer >= phases.layer else "Silent Phase"


def readout_table(readout, phases=None, lens: str = "logit", n_resamples: int = 1000, seed: int = 0,
                  confidence: float = 0.95) -> pd.DataFrame:
    """``depth_table`` of a layer-wise readout, with layer (-1 = embeddings), phase, model, task, lens."""
    table = depth_table(readout.scores, readout.gold, n_resamples, seed, confidence)
    table.insert(0, "layer", table.pop("row") - 1)
    if phases is not None:
        table["phase"] = [_phase_of_layer(layer, phases) for layer in table["layer"]]
        table["chance"] = phases.chance
    table["model"], table["task"], table["lens"] = readout.spec["model"], readout.spec["task"], lens
    return table


def trace_table(trace, n_resamples: int = 1000, seed: int = 0, confidence: float = 0.95) -> pd.DataFrame:
    """``depth_table`` of a pruning trace, with step, n_removed, fraction_removed, schedule, model, task."""
    table = depth_table(trace.scores, trace.gold, n_resamples, seed, confidence)
    table.insert(0, "step", table.pop("row"))
    table.insert(1, "n_removed", trace.n_removed)
    table.insert(2, "fraction_removed", trace.fraction_removed)
    table["schedule"], table["model"], table["task"] = trace.schedule, trace.spec.get("model"), trace.spec.get("task")
    return table


def option_frequency_frame(scores: np.ndarray, index: Sequence, name: str = "layer") -> pd.DataFrame:
    """Long Option Frequency table for ``plots.option_heatmap``: one row per (index, option).

    Args:
        scores: float [n_rows, n_items, n_options].
        index: labels of the rows (layers, steps), length n_rows.
        name: column name of the labels.
    """
    frequency = metrics.option_frequency(scores)  # [n_rows, n_options]
    n_rows, n_options = frequency.shape
    return pd.DataFrame({name: np.repeat(list(index), n_options),
                         "option": list(OPTION_LETTERS[:n_options]) * n_rows,
                         "fraction": frequency.reshape(-1)})


def gold_frequency_frame(gold: np.ndarray, n_options: int, label: str = "gold") -> pd.DataFrame:
    """Gold-position distribution in the shape of ``option_frequency_frame`` (column ``source``)."""
    return pd.DataFrame({"source": label, "option": list(OPTION_LETTERS[:n_options]),
                         "fraction": metrics.gold_frequency(gold, n_options)})


# ------------------------------------------------------------------------- C3a: sharpness


def transition_window(layer: int, n_layers: int) -> tuple[int, int]:
    """Readout rows (row 0 = embeddings, row l + 1 = after layer l) bracketing the transition window.

    Returns:
        (row_before, row_after): the readout before layer ``layer - h`` and after layer ``layer + h``,
        h = floor(WINDOW_FRACTION * n_layers), clipped to 0 .. n_layers.
    """
    half = int(math.floor(WINDOW_FRACTION * n_layers))
    return max(layer - half, 0), min(layer + half + 1, n_layers)


@dataclass(frozen=True)
class TransitionAssessment:
    """The C3a statistics of one model x task (accuracy in fractions, DM in probability units)."""

    model: str
    task: str
    n_items: int
    n_layers: int
    chance: float
    layer: int | None
    layer_ci: tuple[int, int] | None
    found_fraction: float
    window: tuple[int, int] | None  # first and last layer of the window
    dm_rise: tuple[float, float, float]  # (estimate, low, high) of mean DM after - before the window
    jump: float  # accuracy gained across the window
    gain: float  # accuracy gained from the embeddings to the final layer
    sharpness: tuple[float, float, float]  # (estimate, low, high) of jump / gain
    status: str
    reason: str

    def row(self) -> dict:
        """One table row."""
        nan = float("nan")
        ci = self.layer_ci or (None, None)
        return {"model": self.model, "task": self.task, "n_items": self.n_items, "n_layers": self.n_layers,
                "chance": self.chance, "transition_layer": self.layer, "layer_ci_low": ci[0],
                "layer_ci_high": ci[1], "found_fraction": self.found_fraction,
                "window": "–" if self.window is None else f"{self.window[0]}–{self.window[1]}",
                "dm_rise": self.dm_rise[0], "dm_rise_low": self.dm_rise[1], "dm_rise_high": self.dm_rise[2],
                "sharpness": self.sharpness[0] if self.layer is not None else nan,
                "sharpness_low": self.sharpness[1], "sharpness_high": self.sharpness[2], "status": self.status}


def _ratio_ci(numerator: np.ndarray, denominator: np.ndarray, n_resamples: int, seed: int,
              confidence: float) -> tuple[float, float, float]:
    """mean(numerator) / mean(denominator) over items with a percentile item-bootstrap interval.

    A resample (or the data) whose denominator is <= 0 has no gain to share out: its ratio counts as 0.
    """
    def ratio(num, den):
        with np.errstate(all="ignore"):
            return np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)

    weights = item_counts(len(numerator), n_resamples, seed)
    n = len(numerator)
    estimate = float(ratio(numerator.mean(), denominator.mean()))
    boot = ratio(weights @ numerator / n, weights @ denominator / n)
    low, high = stats.percentile_interval(boot, confidence)
    return estimate, float(low), float(high)


def assess_transition(readout, phases, n_resamples: int = 1000, seed: int = 0,
                      confidence: float = 0.95) -> TransitionAssessment:
    """The C3a rule (module docstring) applied to one readout and its phases."""
    n_layers, n_items = readout.n_layers, readout.scores.shape[1]
    nan3 = (float("nan"),) * 3
    common = dict(model=readout.spec["model"], task=readout.spec["task"], n_items=n_items, n_layers=n_layers,
                  chance=phases.chance, layer=phases.layer, layer_ci=phases.layer_ci,
                  found_fraction=phases.transition.found_fraction)
    if phases.layer is None:
        return TransitionAssessment(**common, window=None, dm_rise=nan3, jump=float("nan"), gain=float("nan"),
                                    sharpness=nan3, status="not supported",
                                    reason="no layer from which accuracy's lower bound stays above chance")
    correct = metrics.correct(readout.scores, readout.gold).astype(np.float64)  # [n_layers + 1, n_items]
    dm = metrics.decision_margin(readout.scores, readout.gold)  # [n_layers + 1, n_items]
    before, after = transition_window(phases.layer, n_layers)
    dm_rise = mean_ci(dm[after] - dm[before], n_resamples, seed, confidence)
    jump_items, gain_items = correct[after] - correct[before], correct[-1] - correct[0]
    sharpness = _ratio_ci(jump_items, gain_items, n_resamples, seed, confidence)
    window = (before, after - 1)
    if not phases.silent or phases.transition.index == 0:
        status, reason = "not supported", "the answer is readable from the first layer on: there is no Silent Phase"
    elif lies_below(dm_rise[1:], 0, strict=False):
        status, reason = "not supported", "mean DM does not rise across the transition window"
    elif lies_below(sharpness[1:], SHARPNESS_THRESHOLD):
        status, reason = "not supported", f"the window makes less than {SHARPNESS_THRESHOLD:.0%} of the accuracy gain"
    elif lies_above(dm_rise[1:], 0) and lies_above(sharpness[1:], SHARPNESS_THRESHOLD, strict=False):
        status, reason = "supported", "DM rises across a window that makes most of the accuracy gain"
    else:
        status, reason = "inconclusive", "the intervals of the DM rise or of sharpness straddle the thresholds"
    return TransitionAssessment(**common, window=window, dm_rise=dm_rise, jump=float(jump_items.mean()),
                                gain=float(gain_items.mean()), sharpness=sharpness, status=status, reason=reason)


def transition_table(assessments: Sequence[TransitionAssessment]) -> pd.DataFrame:
    """One row per model x task: transition layer and interval, DM rise, sharpness, C3a status."""
    return pd.DataFrame([assessment.row() for assessment in assessments])


@verdict_rule
def verdict_c3a(readout, phases, n_resamples: int = 1000, seed: int = 0, confidence: float = 0.95) -> Verdict:
    """C3a on one model x task (the main one): a sharp transition with rising DM (rule: module docstring)."""
    a = assess_transition(readout, phases, n_resamples, seed, confidence)
    where = f"{a.model} on {a.task} ({a.n_items} items, {a.n_layers} layers, chance {a.chance:.2f})"
    if a.layer is None:
        text = (f"No transition in {where}: accuracy's item-bootstrap lower bound never stays above chance "
                "to the final layer, so there is no Decisive Phase to emerge.")
        return Verdict("C3a", a.status, "sharpness (window gain / total gain)", None, text, n=a.n_items)
    text = (f"{where}: transition at layer {a.layer} (95% item-bootstrap CI {a.layer_ci}, found in "
            f"{a.found_fraction:.0%} of resamples); window layers {a.window[0]}–{a.window[1]} gain "
            f"{a.jump:+.2f} of a total {a.gain:+.2f} accuracy; mean DM rises by {interval_text(a.dm_rise)}. "
            f"Verdict {a.status}: {a.reason} (threshold {SHARPNESS_THRESHOLD}).")
    return Verdict("C3a", a.status, "sharpness (window gain / total gain)", a.sharpness[0], text,
                   ci=a.sharpness[1:], n=a.n_items)


# ------------------------------------------------------------------------- C3b: option frequency


def phase_option_frequency(readout, phases, n_resamples: int = 1000, seed: int = 0,
                           confidence: float = 0.95) -> pd.DataFrame:
    """Max OF, OF entropy (bits) and TV to the gold distribution, averaged over the layers of each phase.

    Silent layers are read at rows 1 .. t (outputs of layers 0 .. t - 1), Decisive layers at rows
    t + 1 .. L; the embeddings row belongs to neither. Intervals: percentile item bootstrap, the
    same item draws for every layer.

    Returns:
        One row per (phase, statistic) with a non-empty phase: phase, statistic, estimate, low, high, n_layers.
    """
    n_options = readout.scores.shape[-1]
    predicted = metrics.predictions(readout.scores)[1:]  # [n_layers, n_items], row l = after layer l
    gold = np.asarray(readout.gold)
    weights = item_counts(len(gold), n_resamples, seed)
    values = _frequency_stats(predicted, gold, n_options, None)  # each [n_layers]
    boots = _frequency_stats(predicted, gold, n_options, weights)  # each [n_resamples, n_layers]
    rows = []
    for phase, layers in (("Silent Phase", phases.silent), ("Decisive Phase", phases.decisive)):
        if not layers:
            continue
        for name, value, boot in zip(("max_of", "of_entropy", "tv_gold"), values, boots):
            low, high = stats.percentile_interval(boot[:, layers].mean(axis=1), confidence)
            rows.append({"phase": phase, "statistic": name, "estimate": float(value[layers].mean()),
                         "low": float(low), "high": float(high), "n_layers": len(layers)})
    return pd.DataFrame(rows, columns=["phase", "statistic", "estimate", "low", "high", "n_layers"])


@verdict_rule
def verdict_c3b(readout, phases, n_resamples: int = 1000, seed: int = 0, confidence: float = 0.95) -> Verdict:
    """C3b: the Silent Phase piles answers on one option, the Decisive Phase follows the gold distribution."""
    n_items = readout.scores.shape[1]
    where = f"{readout.spec['model']} on {readout.spec['task']} ({n_items} items)"
    statistic = "mean max option frequency over Silent layers"
    if phases.layer is None or not phases.silent or not phases.decisive:
        layers = phases.silent or phases.decisive
        frequency = metrics.option_frequency(readout.scores[1:][layers]).max(axis=-1).mean()
        text = (f"No transition with both phases non-empty in {where}, so Silent and Decisive Option "
                f"Frequencies cannot be compared (max OF averaged over all {len(layers)} layers: {frequency:.2f}).")
        return Verdict("C3b", "not supported", statistic, None, text, n=n_items)
    table = phase_option_frequency(readout, phases, n_resamples, seed, confidence).set_index(["phase", "statistic"])
    silent = table.loc[("Silent Phase", "max_of"), ["estimate", "low", "high"]].to_numpy(dtype=float)
    tv = table.loc[("Decisive Phase", "tv_gold"), ["estimate", "low", "high"]].to_numpy(dtype=float)
    status = all_of(interval_status(silent[1:], MAX_OF_THRESHOLD, supported="above"),
                    interval_status(tv[1:], TV_THRESHOLD, supported="below"))
    text = (f"{where}, transition at layer {phases.layer}: Silent-Phase max OF {interval_text(silent)} "
            f"(collapsed if >= {MAX_OF_THRESHOLD}), Decisive-Phase TV to the gold distribution {interval_text(tv)} "
            f"(close if <= {TV_THRESHOLD}); 95% percentile item-bootstrap intervals.")
    return Verdict("C3b", status, statistic, silent[0], text, ci=(silent[1], silent[2]), n=n_items)


# ------------------------------------------------------------------------------ R2: tuned lens


def kl_frame(kl: pd.DataFrame) -> pd.DataFrame:
    """Long KL-to-final table (layer, lens, kl in nats) from ``Experiments.tuned_readout``'s table."""
    long = kl.melt(id_vars="layer", value_vars=["kl_logit", "kl_tuned"], var_name="lens", value_name="kl")
    long["lens"] = long["lens"].str.removeprefix("kl_")
    return long


def _transition_gap(logit_phases, tuned_phases, confidence: float) -> tuple[float, float, float]:
    """logit layer - tuned layer, with a percentile interval pairing the two item bootstraps by resample."""
    if logit_phases.layer is None or tuned_phases.layer is None:
        nan = float("nan")
        return nan, nan, nan
    estimate = float(logit_phases.layer - tuned_phases.layer)
    a, b = logit_phases.transition.resampled, tuned_phases.transition.resampled
    if a.shape != b.shape:
        return estimate, float("nan"), float("nan")
    both = (a >= 0) & (b >= 0)
    if not both.any():
        return estimate, float("nan"), float("nan")
    low, high = stats.percentile_interval((a[both] - b[both]).astype(np.float64), confidence)
    return estimate, float(low), float(high)


def lens_comparison(logit_phases, tuned_phases, confidence: float = 0.95) -> pd.DataFrame:
    """One row per lens: transition layer, its interval, the fraction of resamples with one, dm_rising."""
    return pd.DataFrame([{"lens": lens, "transition_layer": ph.layer,
                          "layer_ci_low": None if ph.layer_ci is None else ph.layer_ci[0],
                          "layer_ci_high": None if ph.layer_ci is None else ph.layer_ci[1],
                          "found_fraction": ph.transition.found_fraction, "dm_rising": ph.dm_rising,
                          "chance": ph.chance, "n_layers": ph.n_layers}
                         for lens, ph in (("logit", logit_phases), ("tuned", tuned_phases))])


@verdict_rule
def verdict_r2(logit_phases, tuned_phases, n_items: int, confidence: float = 0.95) -> Verdict:
    """R2: the tuned lens finds the transition at the logit lens's depth, not much earlier (rule: module docstring).

    Both Phases must come from readouts of the same items with the same bootstrap seed and
    number of resamples (``Experiments.phases`` and ``phases_from_readout`` with the profile's
    settings), so that resample i of one pairs with resample i of the other.
    """
    statistic = "transition gap, logit - tuned (layers)"
    tolerance = max(1, round(EARLIER_FRACTION * logit_phases.n_layers))
    logit, tuned = logit_phases.layer, tuned_phases.layer
    if logit is None and tuned is None:
        return Verdict("R2", "not supported", statistic, None, n=n_items,
                       text="Neither the logit lens nor the tuned lens finds a transition in the intact main model.")
    if logit is None or tuned is None:
        found, missing = ("tuned", "logit") if logit is None else ("logit", "tuned")
        ci = (tuned_phases if logit is None else logit_phases).layer_ci
        return Verdict("R2", "inconclusive", statistic, None, n=n_items,
                       text=f"Only the {found} lens finds a transition (layer {tuned if logit is None else logit}, "
                            f"CI {ci}); the {missing} lens finds none, so the depths cannot be compared.")
    gap = _transition_gap(logit_phases, tuned_phases, confidence)
    lo_a, hi_a = logit_phases.layer_ci
    lo_b, hi_b = tuned_phases.layer_ci
    overlap = lo_a <= hi_b and lo_b <= hi_a
    if overlap and gap[0] <= tolerance:
        status = "supported"
    elif gap[0] > tolerance and not overlap:
        status = "not supported"
    else:
        status = "inconclusive"
    text = (f"Transition layer: logit lens {logit} (95% CI {logit_phases.layer_ci}), tuned lens {tuned} "
            f"(95% CI {tuned_phases.layer_ci}); intervals {'overlap' if overlap else 'are disjoint'}. "
            f"The tuned lens reads the answer {gap[0]:+.0f} layers earlier (paired item-bootstrap CI "
            f"[{gap[1]:.0f}, {gap[2]:.0f}]); 'much earlier' means more than {tolerance} of "
            f"{logit_phases.n_layers} layers.")
    ci = None if math.isnan(gap[1]) else (gap[1], gap[2])
    return Verdict("R2", status, statistic, gap[0], text, ci=ci, n=n_items)
