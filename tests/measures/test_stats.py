"""Statistics against their definitions: coverage, hand-computed tests, known change points."""

import math

import numpy as np
import pandas as pd
import pytest
from layercollapse.measures import stats as st
from scipy import stats as sps


def test_bootstrap_ci_covers_true_mean_about_95_percent():
    rng = np.random.default_rng(0)
    p, n, repetitions = 0.7, 200, 200
    covered = 0
    for repetition in range(repetitions):
        interval = st.bootstrap_ci(rng.random(n) < p, n_resamples=500, seed=repetition)
        assert interval.low <= interval.estimate <= interval.high
        covered += interval.low <= p <= interval.high
    assert 0.90 <= covered / repetitions <= 0.99


def test_bootstrap_ci_matches_normal_theory_width():
    values = np.random.default_rng(1).normal(10.0, 2.0, size=400)
    interval = st.bootstrap_ci(values, n_resamples=2000)
    half_width = 1.96 * values.std(ddof=1) / math.sqrt(len(values))  # 0.196
    assert interval.estimate == pytest.approx(values.mean())
    assert interval.half_width == pytest.approx(half_width, rel=0.15)
    assert interval.method == "BCa" and interval.n == 400 and interval.confidence == 0.95


def test_bootstrap_ci_degenerate_inputs():
    same = st.bootstrap_ci([0.3, 0.3, 0.3, 0.3])
    assert (same.estimate, same.low, same.high, same.method) == (0.3, 0.3, 0.3, "degenerate")
    one = st.bootstrap_ci([2.0])
    assert (one.low, one.high, one.n) == (2.0, 2.0, 1)
    empty = st.bootstrap_ci([])
    assert empty.n == 0 and math.isnan(empty.estimate) and empty.method == "empty"
    all_correct = st.bootstrap_ci(np.ones(50, dtype=bool))
    assert (all_correct.low, all_correct.high) == (1.0, 1.0)
    # Statistic constant over resamples although values differ: BCa gives NaN, we give a point.
    mostly_tied = st.bootstrap_ci(np.r_[np.zeros(99), 1.0], statistic=np.median)
    assert (mostly_tied.low, mostly_tied.high) == (0.0, 0.0)
    with pytest.raises(ValueError, match="NaN"):
        st.bootstrap_ci([1.0, np.nan])
    with pytest.raises(ValueError, match="1-D"):
        st.bootstrap_ci(np.ones((2, 2)))


def test_bootstrap_ci_is_reproducible_by_seed():
    values = np.random.default_rng(2).random(100)
    assert st.bootstrap_ci(values, seed=5) == st.bootstrap_ci(values, seed=5)
    assert st.bootstrap_ci(values, seed=5).low != st.bootstrap_ci(values, seed=6).low


def test_paired_bootstrap_ci_uses_pairing():
    rng = np.random.default_rng(3)
    difficulty = rng.random(300)
    a = difficulty + 0.05 + rng.normal(0, 0.01, 300)  # a beats b by 0.05 on every item
    b = difficulty
    paired = st.paired_bootstrap_ci(a, b)
    unpaired_half_width = 1.96 * math.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 300)  # ~0.047
    assert paired.estimate == pytest.approx(0.05, abs=0.003)
    assert paired.low > 0.045 and paired.high < 0.055
    assert paired.half_width < unpaired_half_width / 5
    constant = st.paired_bootstrap_ci(b + 0.1, b)
    assert (constant.low, constant.high) == pytest.approx((0.1, 0.1))


def test_paired_bootstrap_ci_aligns_series_on_shared_items():
    a = pd.Series([1.0, 1.0, 0.0, 1.0], index=["q1", "q2", "q3", "q4"])
    b = pd.Series([0.0, 1.0, 0.0], index=["q4", "q1", "q9"])  # shares q1 and q4 only
    interval = st.paired_bootstrap_ci(a, b)
    assert interval.n == 2
    assert interval.estimate == pytest.approx(((1 - 1) + (1 - 0)) / 2)
    with pytest.raises(ValueError, match="equal length"):
        st.paired_bootstrap_ci(np.ones(3), np.ones(4))


def test_seed_summary_against_numpy():
    values = np.random.default_rng(4).random((7, 3, 2))  # [n_seeds, n_steps, n_tasks]
    summary = st.seed_summary(values, band=(10, 90))
    assert summary["n_runs"] == 7
    np.testing.assert_allclose(summary["mean"], values.mean(0))
    np.testing.assert_allclose(summary["sd"], values.std(0, ddof=1))
    np.testing.assert_allclose(summary["low"], np.percentile(values, 10, axis=0))
    np.testing.assert_allclose(summary["high"], np.percentile(values, 90, axis=0))
    assert summary["mean"].shape == (3, 2)
    single = st.seed_summary([[0.5, 0.6]])
    assert single["n_runs"] == 1 and np.isnan(single["sd"]).all()
    np.testing.assert_allclose(single["low"], [0.5, 0.6])
    with pytest.raises(ValueError):
        st.seed_summary(np.zeros((0, 3)))


def _pairs(both: int, only_a: int, only_b: int, neither: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-item correctness of two configurations with the given 2x2 table."""
    a = np.r_[np.ones(both + only_a), np.zeros(only_b + neither)].astype(bool)
    b = np.r_[np.ones(both), np.zeros(only_a), np.ones(only_b), np.zeros(neither)].astype(bool)
    return a, b


def test_mcnemar_exact_by_hand():
    result = st.mcnemar_test(*_pairs(both=40, only_a=10, only_b=2, neither=8))
    np.testing.assert_array_equal(result.table, [[40, 10], [2, 8]])
    # Two-sided exact binomial: 2 * P(X <= 2), X ~ Binomial(12, 1/2).
    expected = 2 * sum(math.comb(12, k) for k in range(3)) / 2**12  # 158 / 4096
    assert result.pvalue == pytest.approx(expected, rel=1e-12)
    assert result.statistic == 2 and result.method == "exact binomial" and result.n_discordant == 12


def test_mcnemar_chi2_by_hand():
    result = st.mcnemar_test(*_pairs(both=100, only_a=30, only_b=10, neither=60))
    statistic = (abs(30 - 10) - 1) ** 2 / (30 + 10)  # 9.025, continuity-corrected
    assert result.statistic == pytest.approx(statistic)
    assert result.pvalue == pytest.approx(math.erfc(math.sqrt(statistic / 2)))  # chi2(1) survival
    assert result.method == "chi2 with continuity correction"


def test_mcnemar_no_discordant_items():
    result = st.mcnemar_test(*_pairs(both=5, only_a=0, only_b=0, neither=5))
    assert result.pvalue == 1.0


def test_holm_by_hand():
    reject, adjusted = st.holm([0.01, 0.04, 0.03, 0.005])
    # Sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04; running max 0.06.
    np.testing.assert_allclose(adjusted, [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_array_equal(reject, [True, False, False, True])
    assert st.holm([])[1].size == 0


@pytest.mark.parametrize(
    "lows, expected",
    [
        ([0.1, 0.5, 0.2, 0.6, 0.7], 3),
        ([0.6, 0.7, 0.8], 0),
        ([0.6, 0.7, 0.2], None),
        ([0.6, np.nan, 0.8], 2),
        ([0.3, 0.3], None),  # equal to the threshold is not above
        ([], None),
    ],
)
def test_first_sustained_above(lows, expected):
    assert st.first_sustained_above(lows, 0.3) == expected


def test_first_sustained_is_vectorised_along_any_axis():
    mask = np.array([[0, 1, 1], [1, 1, 0], [1, 1, 1]], dtype=bool)
    np.testing.assert_array_equal(st.first_sustained(mask, axis=0), [1, 0, 2])
    np.testing.assert_array_equal(st.first_sustained(mask, axis=1), [1, -1, 0])


def test_accuracy_band_is_the_percentile_bootstrap():
    correct = np.r_[np.ones(30), np.zeros(70)]  # accuracy 0.3 on 100 items
    low, high = st.accuracy_band(np.array([30]), 100)
    reference = sps.bootstrap(
        (correct,), np.mean, method="percentile", n_resamples=20000, random_state=np.random.default_rng(0)
    )
    assert low[0] == pytest.approx(reference.confidence_interval.low, abs=0.011)
    assert high[0] == pytest.approx(reference.confidence_interval.high, abs=0.011)
    low, high = st.accuracy_band(np.array([0, 100]), 100)
    np.testing.assert_array_equal(low, [0.0, 1.0])
    np.testing.assert_array_equal(high, [0.0, 1.0])


def _chance_then_accurate(n_layers: int = 30, n_items: int = 500, transition: int = 10) -> np.ndarray:
    """bool [n_layers, n_items]: exactly 25% correct before ``transition``, 90% from it on.

    Each chance layer gets a different quarter of the items right, as readouts that guess do.
    """
    item = np.arange(n_items)
    return np.array([item % 4 == layer % 4 if layer < transition else item % 10 != 0 for layer in range(n_layers)])


def test_transition_layer_on_known_array():
    result = st.transition_layer(_chance_then_accurate(), chance=0.25, n_resamples=200)
    assert result.row == 10 and result.layer == 9  # row 10 reads the output of layer 9
    # A resample lifts the last chance layer's lower bound above chance about 2.5% of
    # the time (the per-layer test's size), moving the layer to 9; nothing else moves it.
    assert result.index_ci in {(9, 10), (10, 10)} and result.found_fraction == 1.0
    assert set(result.resampled) <= {9, 10} and np.mean(result.resampled == 10) > 0.9
    np.testing.assert_allclose(result.accuracy[[0, 9, 10, 29]], [0.25, 0.25, 0.9, 0.9])
    assert (result.low[:10] < 0.25).all() and (result.low[10:] > 0.25).all()
    assert (result.low <= result.accuracy).all() and (result.accuracy <= result.high).all()
    assert result.resampled.shape == (200,)


def test_readout_rows_map_to_original_layers():
    assert [st.layer_of_row(row) for row in (-1, 0, 1, 2, 28)] == [-1, 0, 0, 1, 27]
    np.testing.assert_array_equal(st.layer_of_row(np.array([-1, 0, 5])), [-1, 0, 4])
    result = st.transition_layer(_chance_then_accurate(), chance=0.25, n_resamples=200)
    assert result.layer_ci == tuple(row - 1 for row in result.index_ci)


def test_transition_layer_must_be_sustained():
    correct = _chance_then_accurate()
    correct[20] = correct[0]  # a relapse to chance at layer 20
    assert st.transition_layer(correct, chance=0.25, n_resamples=10).row == 21
    assert st.transition_layer(correct[:10], chance=0.25, n_resamples=10).layer is None


def test_transition_layer_bootstrap_spreads_on_a_noisy_boundary():
    rng = np.random.default_rng(5)
    accuracy = np.r_[np.full(10, 0.25), np.full(3, 0.30), np.full(17, 0.8)]  # weak layers 10-12
    correct = rng.random((30, 300)) < accuracy[:, None]
    result = st.transition_layer(correct, chance=0.25, n_resamples=500, seed=1)
    low, high = result.index_ci
    assert low <= 10 and high >= 12 and low < high
    assert result.found_fraction == 1.0
    again = st.transition_layer(correct, chance=0.25, n_resamples=500, seed=1)
    np.testing.assert_array_equal(result.resampled, again.resampled)


def test_transition_layer_bootstrap_equals_the_rule_applied_to_each_resample():
    """The vectorised bootstrap equals a naive loop: build each resampled item matrix, apply the point rule."""
    rng = np.random.default_rng(6)
    accuracy = np.r_[np.full(12, 0.25), np.linspace(0.27, 0.4, 6), np.full(12, 0.7)]  # a noisy crossing
    correct = rng.random((30, 120)) < accuracy[:, None]
    result = st.transition_layer(correct, chance=0.25, n_resamples=60, seed=3)
    draws = np.random.default_rng(3).multinomial(120, np.full(120, 1 / 120), size=60)  # the documented draw
    naive = []
    for counts in draws:
        resample = np.repeat(correct, counts, axis=1)  # item i appears counts[i] times
        row = st.transition_layer(resample, chance=0.25, n_resamples=0).row
        naive.append(-1 if row is None else row)
    np.testing.assert_array_equal(result.resampled, naive)
    assert len(set(naive)) > 1  # the case exercises a spread, not one constant answer


def test_collapse_point_on_known_trace():
    correct = _chance_then_accurate()[::-1]  # 90% for steps 0-19, exactly chance from step 20
    fraction_removed = np.arange(30) / 30
    result = st.collapse_point(fraction_removed, correct, chance=0.25, margin=0.05, n_resamples=400)
    assert result.step == 20 and result.threshold == pytest.approx(0.30)
    assert result.index_ci[0] == 20 and np.mean(result.resampled == 20) > 0.95
    assert result.fraction_removed == pytest.approx(20 / 30)
    assert result.fraction_removed_ci[0] == pytest.approx(20 / 30)
    assert result.found_fraction > 0.97  # the odd resample lifts the last step above 0.30
    never = st.collapse_point(fraction_removed, correct, chance=0.25, margin=-0.01, n_resamples=50)
    assert never.step is None and never.fraction_removed is None and never.found_fraction < 0.5
    with pytest.raises(ValueError, match="does not match"):
        st.collapse_point(fraction_removed[:5], correct, chance=0.25)


def test_change_points_reject_bad_shapes():
    with pytest.raises(ValueError, match="n_rows, n_items"):
        st.transition_layer(np.ones(5, dtype=bool), chance=0.25)
    with pytest.raises(ValueError, match="n_rows, n_items"):
        st.transition_layer(np.ones((5, 0), dtype=bool), chance=0.25)
