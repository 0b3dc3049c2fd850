"""Metrics against hand-computed values."""

import numpy as np
import pytest
from layercollapse.measures import metrics

# Two items, three options. Item 0: p = softmax(log [0.5, 0.3, 0.2]) -> gold 0 correct.
# Item 1: p = [0.1, 0.6, 0.3], gold 2 -> wrong.
SCORES = np.log(np.array([[0.5, 0.3, 0.2], [0.1, 0.6, 0.3]]))
GOLD = np.array([0, 2])


def test_probabilities_recover_softmax():
    np.testing.assert_allclose(metrics.option_probabilities(SCORES), np.exp(SCORES), atol=1e-12)


def test_accuracy_and_margin_by_hand():
    assert metrics.accuracy(SCORES, GOLD) == pytest.approx(0.5)
    # DM item 0: 0.5 - 0.3 = 0.2; item 1: 0.3 - 0.6 = -0.3
    np.testing.assert_allclose(metrics.decision_margin(SCORES, GOLD), [0.2, -0.3], atol=1e-12)
    assert metrics.mean_decision_margin(SCORES, GOLD) == pytest.approx(-0.05)


def test_margin_positive_iff_correct():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(500, 4))
    gold = rng.integers(0, 4, 500)
    assert np.array_equal(metrics.decision_margin(scores, gold) > 0, metrics.correct(scores, gold))


def test_missing_options_are_never_chosen():
    scores = np.array([[0.0, -1.0, -np.inf]])
    assert metrics.option_probabilities(scores)[0, 2] == 0
    assert metrics.decision_margin(scores, np.array([1]))[0] < 0


def test_option_frequency_and_entropy_by_hand():
    scores = np.array([[1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=float)
    np.testing.assert_allclose(metrics.option_frequency(scores), [0.5, 0.25, 0.25])
    assert metrics.frequency_entropy(np.array([0.5, 0.25, 0.25])) == pytest.approx(1.5)
    assert metrics.frequency_entropy(np.array([1.0, 0.0, 0.0])) == 0
    np.testing.assert_allclose(metrics.gold_frequency(np.array([0, 0, 2, 1]), 3), [0.5, 0.25, 0.25])


def test_vectorised_over_leading_axes():
    stacked = np.stack([SCORES, SCORES[:, ::-1]])  # [2 layers, 2 items, 3 options]
    assert metrics.accuracy(stacked, GOLD).shape == (2,)
    assert metrics.decision_margin(stacked, GOLD).shape == (2, 2)
    assert metrics.option_frequency(stacked).shape == (2, 3)
    np.testing.assert_allclose(metrics.decision_margin(stacked, GOLD)[0], metrics.decision_margin(SCORES, GOLD))


def test_length_normalisation_like_the_harness():
    normed = metrics.length_normalized(np.array([[-4.0, -6.0]]), np.array([[2, 6]]))
    np.testing.assert_allclose(normed, [[-2.0, -1.0]])


@pytest.mark.parametrize("gold, message", [
    (np.array([0, 7]), r"gold value 7 \(flat index 1\) is outside the 4 options \(allowed: 0 … 3; 1 item\(s\) affected\)"),
    (np.array([-1, 0]), r"gold value -1 .* outside the 4 options"),
    (np.array([0, 1, 2]), r"one option index per item: gold has shape \(3,\), scores have shape \(2, 4\)"),
    (np.array([0.0, 1.0]), r"integer option indices, got dtype float64"),
])
def test_gold_outside_the_options_is_refused_by_every_metric(gold, message):
    scores = np.log(np.full((2, 4), 0.25))
    for metric in (metrics.accuracy, metrics.mean_decision_margin, metrics.decision_margin, metrics.correct):
        with pytest.raises(ValueError, match=message):
            metric(scores, gold)
