"""Metrics from option scores: pure array functions, vectorised over leading axes.

Every function takes ``scores`` of shape ``[..., n_items, n_options]`` (log-probs,
``-inf`` for missing options) and ``gold`` of shape ``[n_items]``; the leading
axes (layers, pruning steps, seeds) are kept.
"""

from __future__ import annotations

import numpy as np


def option_probabilities(scores: np.ndarray) -> np.ndarray:
    """p = softmax over the K option scores: float64 [..., n_items, n_options]; missing options get 0."""
    scores = np.asarray(scores, dtype=np.float64)
    shifted = scores - np.max(scores, axis=-1, keepdims=True)
    weights = np.exp(shifted)
    return weights / weights.sum(axis=-1, keepdims=True)


def predictions(scores: np.ndarray) -> np.ndarray:
    """Predicted option index (argmax; ties go to the first option): int [..., n_items]."""
    return np.argmax(np.asarray(scores), axis=-1)


def checked_gold(scores: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """``gold`` as an int array, checked against ``scores`` [..., n_items, n_options].

    Raises:
        ValueError: gold is not one index per item, or an index lies outside the options.
    """
    scores, gold = np.asarray(scores), np.asarray(gold)
    if scores.ndim < 2 or gold.ndim == 0 or gold.shape[-1] != scores.shape[-2]:
        raise ValueError(f"gold must hold one option index per item: gold has shape {gold.shape}, "
                         f"scores have shape {scores.shape} ([..., n_items, n_options])")
    if gold.size and not np.issubdtype(gold.dtype, np.integer):
        raise ValueError(f"gold must be integer option indices, got dtype {gold.dtype}")
    n_options = scores.shape[-1]
    outside = np.flatnonzero((gold < 0) | (gold >= n_options))
    if outside.size:
        raise ValueError(f"gold value {gold.flat[outside[0]]} (flat index {outside[0]}) is outside the {n_options} options "
                         f"(allowed: 0 … {n_options - 1}; {outside.size} item(s) affected)")
    return gold


def correct(scores: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """Whether each item is answered correctly: bool [..., n_items]."""
    return predictions(scores) == checked_gold(scores, gold)


def accuracy(scores: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """Fraction of items answered correctly: float [...]."""
    return correct(scores, gold).mean(axis=-1)


def decision_margin(scores: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """Decision Margin per item: p[gold] - max over wrong options of p[wrong], float64 [..., n_items] in [-1, 1].

    Positive exactly when the gold option has the strictly highest probability.
    """
    gold = checked_gold(scores, gold)
    p = option_probabilities(scores)
    index = np.broadcast_to(gold[..., None], p.shape[:-1] + (1,))
    p_gold = np.take_along_axis(p, index, axis=-1)[..., 0]
    wrong = p.copy()
    np.put_along_axis(wrong, index, -np.inf, axis=-1)
    return p_gold - wrong.max(axis=-1)


def mean_decision_margin(scores: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """Mean Decision Margin over items: float [...]."""
    return decision_margin(scores, gold).mean(axis=-1)


def option_frequency(scores: np.ndarray, n_options: int | None = None) -> np.ndarray:
    """Fraction of items predicting each option position: float [..., n_options], sums to 1."""
    scores = np.asarray(scores)
    n_options = n_options or scores.shape[-1]
    predicted = predictions(scores)
    counts = (predicted[..., None] == np.arange(n_options)).sum(axis=-2)
    return counts / predicted.shape[-1]


def gold_frequency(gold: np.ndarray, n_options: int) -> np.ndarray:
    """Fraction of items whose gold answer is each option position: float [n_options]."""
    return np.bincount(np.asarray(gold), minlength=n_options)[:n_options] / len(gold)


def chance_accuracy(gold: np.ndarray, n_options: int) -> float:
    """Accuracy of the best constant answer (always the most frequent gold position), a fraction.

    A network in the Silent Phase that predicts one option everywhere scores exactly
    the gold frequency of that option, so this, not 1/K, is the level to exceed.
    """
    return float(gold_frequency(gold, n_options).max())


def frequency_entropy(frequency: np.ndarray, base: float = 2.0) -> np.ndarray:
    """Entropy of an option-frequency distribution in bits (0 = collapsed on one option): float [...]."""
    frequency = np.asarray(frequency, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(frequency > 0, frequency * np.log(frequency), 0.0)
    return np.maximum(-terms.sum(axis=-1) / np.log(base), 0.0)  # no -0.0 for a collapsed distribution


def length_normalized(scores: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Harness ``acc_norm`` scores: log-likelihood divided by option length in characters."""
    lengths = np.asarray(lengths, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(lengths > 0, np.asarray(scores, dtype=np.float64) / np.maximum(lengths, 1), -np.inf)


def summarize(scores: np.ndarray, gold: np.ndarray) -> dict[str, np.ndarray]:
    """Accuracy, mean DM, Option Frequency and its entropy in one dict (arrays over leading axes)."""
    frequency = option_frequency(scores)
    return {
        "accuracy": accuracy(scores, gold),
        "mean_dm": mean_decision_margin(scores, gold),
        "option_frequency": frequency,
        "of_entropy": frequency_entropy(frequency),
    }
