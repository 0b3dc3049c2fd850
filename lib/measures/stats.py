"""Statistics: bootstrap intervals, seed summaries, paired tests and change points.

Intervals over items come from ``scipy.stats.bootstrap``; tests and multiplicity
corrections from ``statsmodels``. The two change points of the paper (the
*transition layer* of the layer-wise readout and the *collapse point* of a pruning
trace) share one rule: the first row (layer or pruning step) from which the
per-row accuracy interval stays on one side of a threshold to the end. Their
per-row intervals are the percentile item bootstrap in closed form (see
``accuracy_band``), so that the change point itself can be bootstrapped over items
thousands of times in well under a second.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats as sps
from statsmodels.discrete.discrete_model import Logit
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests

__all__ = [
    "Interval",
    "interval_text",
    "McNemarResult",
    "Crossing",
    "TransitionResult",
    "CollapseResult",
    "bootstrap_ci",
    "paired_bootstrap_ci",
    "accuracy_band",
    "seed_summary",
    "mcnemar_test",
    "holm",
    "first_sustained",
    "first_sustained_above",
    "transition_layer",
    "collapse_point",
    "firth_logit",
    "stratified_resamples",
]

# McNemar: the exact binomial test below this many discordant pairs, chi2 above.
EXACT_MCNEMAR_BELOW = 25


@dataclass(frozen=True)
class Interval:
    """A point estimate with a confidence interval.

    ``method`` is the scipy bootstrap method that produced the bounds, or
    ``"degenerate"`` when the bootstrap distribution has a single value (all values
    identical, or n = 1), in which case ``low == high == estimate``. ``n`` is the
    number of values (items) the estimate is computed from.
    """

    estimate: float
    low: float
    high: float
    confidence: float
    method: str
    n: int

    @property
    def half_width(self) -> float:
        """Half the interval width, in the units of ``estimate``."""
        return (self.high - self.low) / 2

    @property
    def ci(self) -> tuple[float, float]:
        """The bounds ``(low, high)``."""
        return self.low, self.high

    def text(self, digits: int = 3) -> str:
        """``estimate [low, high]`` for a verdict's text (:func:`interval_text`)."""
        return interval_text((self.estimate, self.low, self.high), digits)


def interval_text(values: Sequence[float], digits: int = 2) -> str:
    """An estimate and its interval ``(estimate, low, high)`` as ``0.12 [0.05, 0.20]``; "–" when undefined."""
    estimate, low, high = values
    if estimate is None or (isinstance(estimate, float) and math.isnan(estimate)):
        return "–"
    return f"{estimate:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def _bootstrap(
    data: tuple[np.ndarray, ...],
    statistic: Callable[..., np.ndarray],
    paired: bool,
    confidence: float,
    n_resamples: int,
    method: str,
    seed: int,
) -> Interval:
    """Shared core of ``bootstrap_ci`` and ``paired_bootstrap_ci``: 1-D samples in, Interval out."""
    n = len(data[0])
    if n == 0:
        nan = float("nan")
        return Interval(nan, nan, nan, confidence, "empty", 0)
    estimate = float(statistic(*data, axis=-1))
    # The bootstrap distribution is a single point: BCa divides by zero, percentile is exact.
    constant = n < 2 or all(np.ptp(sample) == 0 for sample in data)
    if constant:
        return Interval(estimate, estimate, estimate, confidence, "degenerate", n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sps.DegenerateDataWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        result = sps.bootstrap(
            data,
            statistic,
            paired=paired,
            vectorized=True,
            confidence_level=confidence,
            n_resamples=n_resamples,
            method=method,
            random_state=np.random.default_rng(seed),
        )
    low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    if np.isnan(low) or np.isnan(high):
        # BCa fails when the statistic is constant over resamples (e.g. a median of
        # mostly-tied values) although the values are not: the interval is a point.
        return Interval(estimate, estimate, estimate, confidence, "degenerate", n)
    return Interval(estimate, low, high, confidence, method, n)


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    statistic: Callable[..., np.ndarray] = np.mean,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    method: str = "BCa",
    seed: int = 0,
) -> Interval:
    """Bootstrap confidence interval of ``statistic`` over values (items or seeds).

    Args:
        values: float or bool [n], one value per resampling unit (NaN not allowed).
        statistic: reduces along ``axis`` (``statistic(x, axis=-1)``), like ``np.mean``.
        confidence: two-sided confidence level in (0, 1).
        n_resamples: bootstrap resamples.
        method: ``"BCa"``, ``"percentile"`` or ``"basic"`` (scipy.stats.bootstrap).
        seed: seed of the resampling generator.

    Returns:
        Interval in the units of ``statistic``; a point interval when all values are
        equal or n = 1, NaN everywhere when n = 0.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"values must be 1-D [n], got shape {values.shape}")
    if np.isnan(values).any():
        raise ValueError("values contain NaN; drop or impute them first")
    return _bootstrap((values,), statistic, False, confidence, n_resamples, method, seed)


def resample_counts(n_units: int, n_resamples: int, rng: np.random.Generator | int) -> np.ndarray:
    """The bootstrap's resamples as counts: int64 [n_resamples, n_units], how often each unit (item, seed) is drawn
    in each resample (rows sum to ``n_units``). ``rng``: a generator, or the seed of a new one."""
    rng = np.random.default_rng(rng)  # a Generator is used as it is
    return rng.multinomial(n_units, np.full(n_units, 1 / n_units), size=n_resamples)


def percentile_interval(draws: np.ndarray, confidence: float, axis: int = 0,
                        method: str = "linear") -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval over ``axis`` (the resamples), ignoring NaN: (low, high), each the shape of
    ``draws`` without ``axis`` (NaN where every draw is NaN). ``method``: ``np.quantile``'s (``"inverted_cdf"`` keeps
    integer statistics such as a step or a layer integer)."""
    alpha = 1 - confidence
    with warnings.catch_warnings():  # all-NaN columns give NaN bounds
        warnings.simplefilter("ignore", RuntimeWarning)
        low, high = np.nanquantile(draws, [alpha / 2, 1 - alpha / 2], axis=axis, method=method)
    return low, high


def _mean_difference(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    """mean(a) - mean(b) along ``axis``: the default paired statistic."""
    return np.mean(a, axis=axis) - np.mean(b, axis=axis)


def _shared_items(
    a: Sequence[float] | np.ndarray | pd.Series, b: Sequence[float] | np.ndarray | pd.Series
) -> tuple[np.ndarray, np.ndarray]:
    """Align two per-item arrays: Series on their shared index, arrays by position."""
    if isinstance(a, pd.Series) and isinstance(b, pd.Series):
        a, b = a.align(b, join="inner")
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired samples must be 1-D and of equal length, got {a.shape} and {b.shape}")
    return a, b


def paired_bootstrap_ci(
    a: Sequence[float] | np.ndarray | pd.Series,
    b: Sequence[float] | np.ndarray | pd.Series,
    statistic: Callable[..., np.ndarray] = _mean_difference,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    method: str = "BCa",
    seed: int = 0,
) -> Interval:
    """Paired bootstrap interval of mean(a) - mean(b) over the items two configurations share.

    Items are resampled jointly (``paired=True``), so per-item difficulty cancels.

    Args:
        a, b: float or bool [n_items], same items in the same order; two
            ``pd.Series`` are first aligned on the intersection of their indices
            (item ids), which is how "items shared by both" is meant.
        statistic: ``statistic(a, b, axis=-1)``; default mean(a) - mean(b).
        confidence, n_resamples, method, seed: as in ``bootstrap_ci``.

    Returns:
        Interval of the difference, in the units of the values (accuracy: fraction).
    """
    a, b = _shared_items(a, b)
    if np.isnan(a).any() or np.isnan(b).any():
        raise ValueError("paired samples contain NaN")
    return _bootstrap((a, b), statistic, True, confidence, n_resamples, method, seed)


def seed_summary(
    values: Sequence[float] | np.ndarray, band: tuple[float, float] = (2.5, 97.5)
) -> dict[str, np.ndarray | int]:
    """Summarise repeated runs (seeds) elementwise along the trailing axes.

    Args:
        values: float [n_seeds, ...], one row per seed (e.g. [n_seeds, n_steps] accuracy).
        band: lower and upper percentiles (0-100) of the spread band across seeds.

    Returns:
        dict with ``mean``, ``sd`` (ddof=1; NaN when n_seeds = 1), ``low``, ``high``
        (the percentile band), each float64 [...] in the units of ``values``, and
        ``n_runs`` (int). ``pd.DataFrame(summary)`` gives a table when [...] is 1-D.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 0 or values.shape[0] == 0:
        raise ValueError(f"values must be [n_seeds, ...] with n_seeds >= 1, got shape {values.shape}")
    n_runs = values.shape[0]
    if n_runs > 1:
        sd = values.std(axis=0, ddof=1)
    else:
        sd = np.full(values.shape[1:], np.nan)
    low, high = np.percentile(values, band, axis=0)
    return {"mean": values.mean(axis=0), "sd": sd, "low": low, "high": high, "n_runs": n_runs}


@dataclass(frozen=True, eq=False)
class McNemarResult:
    """McNemar's test of two configurations answering the same items.

    ``table`` is int [2, 2]: rows = configuration A correct / wrong, columns =
    configuration B correct / wrong; the discordant cells are ``table[0, 1]`` (only
    A right) and ``table[1, 0]`` (only B right).
    """

    table: np.ndarray
    statistic: float
    pvalue: float
    method: str

    @property
    def n_discordant(self) -> int:
        """Items on which exactly one configuration is correct."""
        return int(self.table[0, 1] + self.table[1, 0])


def mcnemar_test(correct_a: Sequence[bool] | np.ndarray, correct_b: Sequence[bool] | np.ndarray) -> McNemarResult:
    """McNemar's test that two configurations have the same accuracy on the same items.

    Exact (binomial, two-sided) when fewer than 25 items are discordant, otherwise
    chi2 with continuity correction; statistic = min(b, c) for the exact test, the
    chi2 value otherwise.

    Args:
        correct_a, correct_b: bool [n_items], per-item correctness, same item order.
    """
    a, b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"correct_a and correct_b must be 1-D of equal length, got {a.shape} and {b.shape}")
    table = np.array([[np.sum(a & b), np.sum(a & ~b)], [np.sum(~a & b), np.sum(~a & ~b)]], dtype=np.int64)
    exact = table[0, 1] + table[1, 0] < EXACT_MCNEMAR_BELOW
    result = mcnemar(table, exact=exact, correction=True)
    method = "exact binomial" if exact else "chi2 with continuity correction"
    return McNemarResult(table, float(result.statistic), min(1.0, float(result.pvalue)), method)


def holm(pvalues: Sequence[float] | np.ndarray, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Holm-Bonferroni correction of a family of p-values.

    Args:
        pvalues: float [n_tests].
        alpha: family-wise error rate.

    Returns:
        (reject bool [n_tests], adjusted p-values float [n_tests]) in input order.
    """
    pvalues = np.asarray(pvalues, dtype=np.float64)
    if pvalues.size == 0:
        return np.zeros(0, dtype=bool), np.zeros(0)
    reject, adjusted, _, _ = multipletests(pvalues, alpha=alpha, method="holm")
    return reject, adjusted


# ---------------------------------------------------------------------------
# Change points: transition layer and collapse point
# ---------------------------------------------------------------------------


def first_sustained(mask: np.ndarray, axis: int = 0) -> np.ndarray:
    """First index along ``axis`` from which ``mask`` is True up to the end; -1 where none.

    Args:
        mask: bool [..., n_rows, ...].

    Returns:
        int64 with ``axis`` removed.
    """
    mask = np.moveaxis(np.asarray(mask, dtype=bool), axis, 0)  # [n_rows, ...]
    if mask.shape[0] == 0:
        return np.full(mask.shape[1:], -1, dtype=np.int64)
    # suffix_all[i] = mask[i:].all(): monotone False ... False True ... True.
    suffix_all = np.logical_and.accumulate(mask[::-1], axis=0)[::-1]
    first = np.argmax(suffix_all, axis=0)
    return np.where(suffix_all[-1], first, -1).astype(np.int64)


def first_sustained_above(lows: Sequence[float] | np.ndarray, threshold: float) -> int | None:
    """First index from which ``lows`` stays strictly above ``threshold`` to the end.

    Args:
        lows: float [n_layers], e.g. lower confidence bounds of accuracy (NaN counts as not above).
        threshold: same units as ``lows`` (e.g. chance accuracy 1 / n_options).

    Returns:
        The index, or None when the last value is not above the threshold.
    """
    index = int(first_sustained(np.asarray(lows, dtype=np.float64) > threshold))
    return None if index < 0 else index


def accuracy_band(
    n_correct: np.ndarray, n_items: int, confidence: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile item-bootstrap interval of accuracy, in closed form.

    Resampling n items with replacement from a set with k correct draws
    Binomial(n, k/n) correct, so the percentile bootstrap interval (with infinitely
    many resamples) is the binomial quantiles at (1 - confidence)/2 and
    (1 + confidence)/2, divided by n. This is what
    ``scipy.stats.bootstrap(method="percentile")`` converges to, without its
    Monte-Carlo error, and it is cheap enough to evaluate inside an outer bootstrap.

    Args:
        n_correct: int [...], correct items per row (layer, step, resample).
        n_items: items per row.
        confidence: two-sided confidence level.

    Returns:
        (low, high), each float64 [...], accuracy as a fraction in [0, 1].
    """
    alpha = 1 - confidence
    k = np.arange(n_items + 1)
    # One table entry per possible count, then index: [n_items + 1] -> [...].
    low_of_k = sps.binom.ppf(alpha / 2, n_items, k / n_items) / n_items
    high_of_k = sps.binom.ppf(1 - alpha / 2, n_items, k / n_items) / n_items
    n_correct = np.asarray(n_correct, dtype=np.int64)
    return low_of_k[n_correct], high_of_k[n_correct]


@dataclass(frozen=True, eq=False)
class Crossing:
    """Where a per-row accuracy band first stays on one side of a threshold, with its item bootstrap.

    Rows are layers (transition) or pruning steps (collapse), in original order.
    """

    index: int | None  # first row of the sustained crossing; None if it never happens
    accuracy: np.ndarray  # float64 [n_rows], fraction correct
    low: np.ndarray  # float64 [n_rows], percentile item-bootstrap lower bound
    high: np.ndarray  # float64 [n_rows], upper bound
    threshold: float  # accuracy units (chance, or chance + margin)
    confidence: float  # of the per-row bands and of index_ci
    n_items: int
    resampled: np.ndarray = field(repr=False)  # int64 [n_resamples], index per item resample, -1 = none
    index_ci: tuple[int, int] | None  # percentile interval of index over resamples that have one
    found_fraction: float  # fraction of item resamples in which the crossing exists


def layer_of_row(row: int | np.ndarray) -> int | np.ndarray:
    """Readout row -> original index of the first layer whose output reads as the row does: row 0 (the embeddings)
    and row 1 (after layer 0) -> layer 0, row i -> layer i - 1; -1 (none) stays -1. An int, or int64 [...] for rows
    [...]."""
    layer = np.where(np.asarray(row) >= 0, np.maximum(np.asarray(row) - 1, 0), -1)
    return int(layer) if np.ndim(layer) == 0 else layer


@dataclass(frozen=True, eq=False)
class TransitionResult(Crossing):
    """Transition of a layer-wise readout: the first row from which the accuracy lower bound stays above chance.

    Rows are the readout's (0 = embeddings, i = after the i-th layer); :attr:`layer` and :attr:`layer_ci` are the
    original layer indices (:func:`layer_of_row`).
    """

    @property
    def row(self) -> int | None:
        """The transition's readout row, or None: the network stays Silent."""
        return self.index

    @property
    def layer(self) -> int | None:
        """The transition layer (original index: the first layer of the Decisive Phase), or None."""
        return None if self.index is None else layer_of_row(self.index)

    @property
    def layer_ci(self) -> tuple[int, int] | None:
        """Item-bootstrap interval of :attr:`layer` (original indices), or None when no resample has one."""
        return None if self.index_ci is None else tuple(layer_of_row(row) for row in self.index_ci)


@dataclass(frozen=True, eq=False)
class CollapseResult(Crossing):
    """Collapse point: first pruning step from which accuracy stays <= chance + margin."""

    fraction_removed: float | None = None  # at the collapse step
    fraction_removed_ci: tuple[float, float] | None = None

    @property
    def step(self) -> int | None:
        """The collapse step (row of the trace), or None: accuracy never collapses."""
        return self.index


def _crossing_fields(
    correct: np.ndarray,
    side: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray],
    threshold: float,
    confidence: float,
    n_resamples: int,
    seed: int,
) -> dict:
    """Shared body of ``transition_layer`` and ``collapse_point``.

    ``side(accuracy, low, high)`` returns the bool mask of rows on the sought side
    of the threshold; the change point is its first sustained index, on the data and on
    ``n_resamples`` item resamples (item columns drawn with replacement, the same
    draw for every row).
    """
    correct = np.asarray(correct, dtype=bool)
    if correct.ndim != 2 or correct.shape[1] == 0:
        raise ValueError(f"correct must be bool [n_rows, n_items] with n_items >= 1, got shape {correct.shape}")
    n_rows, n_items = correct.shape
    n_correct = correct.sum(axis=1)  # [n_rows]
    accuracy = n_correct / n_items
    low, high = accuracy_band(n_correct, n_items, confidence)
    index = int(first_sustained(side(accuracy, low, high)))

    draws = resample_counts(n_items, n_resamples, seed)  # [n_resamples, n_items]
    resampled_correct = draws @ correct.T.astype(np.int64)  # [n_resamples, n_rows]
    resampled_band = accuracy_band(resampled_correct, n_items, confidence)
    resampled = first_sustained(side(resampled_correct / n_items, *resampled_band), axis=1)  # [n_resamples]
    found = resampled[resampled >= 0]  # [n_found]
    index_ci = None
    if found.size:
        index_ci = tuple(int(q) for q in percentile_interval(found, confidence, method="inverted_cdf"))
    return dict(
        index=None if index < 0 else index,
        accuracy=accuracy,
        low=low,
        high=high,
        threshold=float(threshold),
        confidence=confidence,
        n_items=n_items,
        resampled=resampled,
        index_ci=index_ci,
        found_fraction=float(found.size / n_resamples) if n_resamples else float("nan"),
    )


def transition_layer(
    correct: np.ndarray,
    chance: float,
    confidence: float = 0.95,
    n_resamples: int = 1000,
    seed: int = 0,
) -> TransitionResult:
    """Transition layer: the first layer from which accuracy's item-bootstrap lower bound stays above chance.

    Silent Phase = layers before it, Decisive Phase = layers from it on. Only the
    accuracy criterion of the project's definition is applied here; the "mean DM is
    rising" condition belongs to the caller, which holds the margins. The layer is
    then bootstrapped over items: item columns are resampled ``n_resamples`` times,
    the rule is re-applied to each resample, and the percentile interval of the
    resampled layers (among resamples where a transition exists) is reported with
    the fraction of resamples where one exists.

    Args:
        correct: bool [n_layers, n_items], readout at each layer answers the item correctly.
        chance: chance accuracy (1 / n_options for balanced gold positions).
        confidence: two-sided level of the per-layer bands and of the layer's interval.
        n_resamples: outer item resamples for the interval of the layer.
        seed: seed of the item resampling.

    Returns:
        TransitionResult; ``.layer`` is None when no layer qualifies.
    """
    fields = _crossing_fields(correct, lambda acc, low, high: low > chance, chance, confidence, n_resamples, seed)
    return TransitionResult(**fields)


def collapse_point(
    fraction_removed: Sequence[float] | np.ndarray,
    correct: np.ndarray,
    chance: float,
    margin: float = 0.05,
    confidence: float = 0.95,
    n_resamples: int = 1000,
    seed: int = 0,
) -> CollapseResult:
    """Collapse point: the first pruning step from which accuracy stays at or below chance + margin.

    Definition: the first step s such that, at s and at every later step, accuracy
    is at most ``chance + margin``: the pruned model has fallen to (near-)chance and
    never recovers. Its uncertainty is the item bootstrap of s (as in
    ``transition_layer``), not per-step bounds: a rule on the upper bound
    ("high <= chance + margin") would count the sampling noise twice, and under
    resampling a model exactly at chance then fails it somewhere in a long
    chance-level tail in a large share of resamples (a quarter in the tests: 500
    items, margin 0.05). ``margin`` should be at least 2.5 standard errors at chance,
    2.5 * sqrt(chance * (1 - chance) / n_items) (0.048 for 500 four-option items,
    0.032 for ARC-Challenge's 1,172), so that a chance-level tail stays below it.

    Args:
        fraction_removed: float [n_steps], fraction of layers removed at each step (0 = intact).
        correct: bool [n_steps, n_items], per-item correctness after each step (same items).
        chance: chance accuracy.
        margin: accuracy units added to chance (fraction; default 5 points).
        confidence, n_resamples, seed: as in ``transition_layer``.

    Returns:
        CollapseResult; ``.step`` is None when accuracy never collapses, and
        ``fraction_removed`` / ``fraction_removed_ci`` translate the step and its
        interval into fractions of layers removed.
    """
    fraction_removed = np.asarray(fraction_removed, dtype=np.float64)
    correct = np.asarray(correct, dtype=bool)
    if fraction_removed.shape != correct.shape[:1]:
        raise ValueError(f"fraction_removed {fraction_removed.shape} does not match correct {correct.shape}")
    threshold = chance + margin
    fields = _crossing_fields(correct, lambda acc, low, high: acc <= threshold, threshold, confidence, n_resamples, seed)
    step, step_ci = fields["index"], fields["index_ci"]
    return CollapseResult(
        **fields,
        fraction_removed=None if step is None else float(fraction_removed[step]),
        fraction_removed_ci=None if step_ci is None else tuple(float(fraction_removed[s]) for s in step_ci),
    )


# ---------------------------------------------------------------------------
# Logistic regression that stays finite under separation
# ---------------------------------------------------------------------------


def firth_logit(exog: np.ndarray, endog: np.ndarray, max_iterations: int = 100, tolerance: float = 1e-10) -> np.ndarray:
    """Firth-penalised logistic regression: the maximum of log L(beta) + 1/2 log det I(beta) (Jeffreys prior).

    Firth (1993), Heinze & Schemper (2002): the penalty removes the O(1/n) bias of maximum likelihood and keeps
    the estimate finite where the classes are (quasi-)separated, where the plain maximum-likelihood fit diverges;
    on well-separated-free, large samples it approaches statsmodels' ``Logit`` fit. Newton steps on the modified
    score X'(y - p + h (1/2 - p)), h the diagonal of the weighted hat matrix, halved while they lower the
    penalised log-likelihood; the likelihood and its Hessian (minus the information matrix) are statsmodels' ``Logit``'s.

    Args:
        exog: float [n, n_features], the design matrix (include a column of ones for an intercept).
        endog: 0/1 [n], the outcomes.
    Returns:
        float64 [n_features], the coefficients (log odds per unit of each feature).
    Raises:
        ValueError: the design matrix is rank-deficient (a feature constant or a copy of another).
    """
    exog, endog = np.asarray(exog, dtype=np.float64), np.asarray(endog, dtype=np.float64)
    if np.linalg.matrix_rank(exog) < exog.shape[1]:
        raise ValueError(f"the design matrix [{exog.shape[0]}, {exog.shape[1]}] is rank-deficient: a feature is "
                         "constant or a combination of the others, so its coefficient is not identified")
    model = Logit(endog, exog)

    def penalised(beta: np.ndarray) -> float:
        return float(model.loglike(beta) + 0.5 * np.linalg.slogdet(-model.hessian(beta))[1])

    beta = np.zeros(exog.shape[1])
    for _ in range(max_iterations):
        p = model.cdf(exog @ beta)  # [n]
        inverse = np.linalg.inv(-model.hessian(beta))  # the information (X' W X) inverted, [n_features, n_features]
        h = p * (1 - p) * np.einsum("ij,jk,ik->i", exog, inverse, exog)  # hat-matrix diagonal, [n]
        step = inverse @ (exog.T @ (endog - p + h * (0.5 - p)))
        current = penalised(beta)
        for _ in range(30):  # step halving: never lower the penalised likelihood
            if penalised(beta + step) >= current - 1e-12:
                break
            step = step / 2
        beta = beta + step
        if np.max(np.abs(step)) < tolerance:
            break
    return beta


def stratified_resamples(strata: Sequence, n_resamples: int, seed: int) -> list[np.ndarray]:
    """Bootstrap resamples of units that keep each stratum's size: per resample, the indices (int64 [n_units]) of the
    units drawn, with replacement within each stratum (a cluster bootstrap over traces keeps the design's groups)."""
    strata = np.asarray(strata)
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(strata == value) for value in dict.fromkeys(strata.tolist())]
    return [np.concatenate([rng.choice(group, size=len(group), replace=True) for group in groups])
            for _ in range(n_resamples)]
