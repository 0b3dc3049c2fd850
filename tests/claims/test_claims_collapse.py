"""Verdict rules of C1, C2 and R3 on constructed traces whose answer is known (no model)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from layercollapse.claims import collapse
from layercollapse.pruning.trace import Trace

N_ITEMS, N_OPTIONS, N_LAYERS = 400, 4, 20
CHANCE = 0.25  # gold positions are balanced


def make_trace(accuracy: np.ndarray, schedule: str = "iterative", seed: int | None = None) -> Trace:
    """A trace with n_layers = len(accuracy) whose step t answers the first round(accuracy[t] * N) items correctly."""
    accuracy = np.asarray(accuracy, dtype=np.float64)
    n_steps = len(accuracy)
    gold = np.arange(N_ITEMS) % N_OPTIONS
    n_correct = np.round(accuracy * N_ITEMS).astype(int)
    correct = np.arange(N_ITEMS)[None, :] < n_correct[:, None]  # [n_steps, n_items]
    predicted = np.where(correct, gold, (gold + 1) % N_OPTIONS)  # [n_steps, n_items]
    scores = np.full((n_steps, N_ITEMS, N_OPTIONS), -2.0, dtype=np.float32)
    np.put_along_axis(scores, predicted[..., None], 0.0, axis=-1)
    kept = np.arange(n_steps)[None, :] >= np.arange(n_steps)[:, None]  # step t removed t layers
    removed = ((),) + tuple((t - 1,) for t in range(1, n_steps))
    spec = {"model": "toy", "task": "toy_task", "schedule": schedule, "seed": seed}
    return Trace(spec, removed, kept, scores, np.full(n_steps, np.nan), gold)


def cliff_accuracy() -> np.ndarray:
    """0.8 for ten steps, then chance: a cliff at step 10."""
    return np.where(np.arange(N_LAYERS) < 10, 0.8, CHANCE)


def slope_accuracy() -> np.ndarray:
    """A linear decline from 0.8 to chance over ten steps, then chance."""
    return np.clip(0.8 - 0.055 * np.arange(N_LAYERS), CHANCE, None)


def similarity_table(cka: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"step": np.arange(len(cka)), "cka": cka, "cosine": cka})


def test_collapse_margin_is_at_least_five_points_and_2_5_standard_errors():
    assert collapse.collapse_margin(0.25, 10_000) == 0.05
    assert collapse.collapse_margin(0.25, 12) == pytest.approx(2.5 * np.sqrt(0.25 * 0.75 / 12))


def test_locate_collapse_finds_the_cliff_step_and_refuses_a_model_at_chance():
    found = collapse.locate_collapse(make_trace(cliff_accuracy()), CHANCE, n_resamples=200)
    assert found.intact_above and found.step == 10 and found.step_ci == (10, 10)
    at_chance = collapse.locate_collapse(make_trace(np.full(N_LAYERS, CHANCE)), CHANCE, n_resamples=200)
    assert not at_chance.intact_above and at_chance.step is None and "no collapse" in at_chance.describe()


def test_c1_supported_for_a_cliff():
    verdict = collapse.verdict_c1(make_trace(cliff_accuracy()), CHANCE, n_resamples=500)
    assert verdict.status == "supported" and verdict.claim == "C1" and verdict.n == N_ITEMS
    # excess = 0.55 - 3 * 0.55 / 10
    assert verdict.value == pytest.approx(0.55 - 3 * 0.055, abs=1e-9) and verdict.ci[0] > 0


def test_the_per_model_summary_row_states_the_collapse_and_the_verdict_on_the_trace():
    trace = make_trace(cliff_accuracy())
    found = collapse.locate_collapse(trace, collapse.trace_chance(trace), n_resamples=200)
    verdict = collapse.verdict_c1(trace, CHANCE, n_resamples=200)
    row = collapse.collapse_summary(trace, found, verdict)
    assert collapse.trace_chance(trace) == CHANCE and verdict.model == "toy"
    assert (row["model"], row["n_layers"], row["n_items"], row["chance"]) == ("toy", N_LAYERS, N_ITEMS, CHANCE)
    assert row["intact_accuracy"] == pytest.approx(0.8) and (row["collapse_step"], row["step_low"], row["step_high"]) == (
        10, 10, 10)
    assert row["fraction_at_collapse"] == pytest.approx(10 / N_LAYERS)
    assert (row["status"], row["value"], row["value_low"], row["value_high"]) == (verdict.status, verdict.value,
                                                                                  *verdict.ci)


def test_c1_not_supported_for_a_slope_or_no_collapse():
    slope = collapse.verdict_c1(make_trace(slope_accuracy()), CHANCE, n_resamples=500)
    assert slope.status == "not supported" and slope.value < 0 and "slope" in slope.text
    flat = collapse.verdict_c1(make_trace(np.full(N_LAYERS, 0.8)), CHANCE, n_resamples=200)
    assert flat.status == "not supported" and flat.value is None


def test_c1_inconclusive_when_the_intact_model_is_at_chance():
    verdict = collapse.verdict_c1(make_trace(np.full(N_LAYERS, CHANCE)), CHANCE, n_resamples=200)
    assert verdict.status == "inconclusive"


def test_c2_supported_when_cka_stays_high_through_the_collapse():
    trace = make_trace(cliff_accuracy())
    verdict = collapse.verdict_c2(trace, similarity_table(np.full(N_LAYERS, 0.95)), CHANCE, n_resamples=200)
    assert verdict.status == "supported" and verdict.value == pytest.approx(0.95) and verdict.ci == (0.95, 0.95)


def test_c2_not_supported_when_cka_falls_with_accuracy():
    trace = make_trace(cliff_accuracy())
    cka = np.where(np.arange(N_LAYERS) < 10, 0.95, 0.3)
    verdict = collapse.verdict_c2(trace, similarity_table(cka), CHANCE, n_resamples=200)
    assert verdict.status == "not supported" and verdict.value == pytest.approx(0.3)


def test_c2_inconclusive_without_a_collapse():
    verdict = collapse.verdict_c2(make_trace(np.full(N_LAYERS, 0.8)), similarity_table(np.ones(N_LAYERS)),
                                  CHANCE, n_resamples=200)
    assert verdict.status == "inconclusive"


def test_r3_not_supported_when_the_loss_breaks_at_the_collapse_depth():
    loss = np.where(np.arange(N_LAYERS) < 10, 3.0, 9.0) + 0.01 * np.arange(N_LAYERS)
    verdict = collapse.verdict_r3(make_trace(cliff_accuracy()), loss, CHANCE, n_resamples=200)
    assert verdict.status == "not supported" and verdict.value == 0 and verdict.ci == (0.0, 0.0)


def test_r3_supported_when_the_loss_rises_smoothly_or_breaks_elsewhere():
    trace = make_trace(cliff_accuracy())
    smooth = collapse.verdict_r3(trace, 3.0 + 0.3 * np.arange(N_LAYERS), CHANCE, n_resamples=200)
    assert smooth.status == "supported" and "no loss cliff" in smooth.text
    late = np.where(np.arange(N_LAYERS) < 17, 3.0, 9.0)
    elsewhere = collapse.verdict_r3(trace, late, CHANCE, n_resamples=200)
    assert elsewhere.status == "supported" and elsewhere.value == 7


def test_r3_inconclusive_without_a_collapse_and_reports_the_random_baseline():
    randoms = [make_trace(np.full(N_LAYERS, CHANCE), "random", seed) for seed in range(3)]
    verdict = collapse.verdict_r3(make_trace(np.full(N_LAYERS, 0.8)), np.ones(N_LAYERS), CHANCE, randoms,
                                  n_resamples=200)
    assert verdict.status == "inconclusive" and "Random-layer baseline" in verdict.text


def test_area_between_curves_is_the_integrated_accuracy_gap():
    iterative = make_trace(np.full(N_LAYERS, 0.8))
    randoms = [make_trace(np.full(N_LAYERS, 0.3), "random", seed) for seed in range(3)]
    area = collapse.area_between(iterative, randoms, n_resamples=300)
    span = iterative.fraction_removed[-1]  # integral over [0, 0.95]
    assert area.estimate == pytest.approx(0.5 * span) and area.low > 0 and area.low <= area.estimate <= area.high
    same = collapse.area_between(iterative, [make_trace(np.full(N_LAYERS, 0.8))], n_resamples=100)
    assert same.estimate == pytest.approx(0) and same.low == pytest.approx(0) and same.high == pytest.approx(0)


def test_curve_tables_have_one_row_per_series_and_step_with_ordered_intervals():
    iterative = make_trace(cliff_accuracy())
    randoms = [make_trace(slope_accuracy(), "random", seed) for seed in range(2)]
    curves = collapse.schedule_curves({"iterative": iterative, "random": randoms}, n_resamples=100)
    assert len(curves) == 2 * 2 * N_LAYERS and set(curves["metric"]) == {"accuracy", "mean DM"}
    assert (curves["low"] <= curves["value"] + 1e-12).all() and (curves["value"] <= curves["high"] + 1e-12).all()
    similarity = collapse.similarity_curves(iterative, similarity_table(np.linspace(1, 0.5, N_LAYERS)))
    assert set(similarity["measure"]) == {"accuracy", "linear CKA", "cosine"} and len(similarity) == 3 * N_LAYERS
    losses = collapse.loss_curves({"iterative": np.ones(N_LAYERS), "random": [np.ones(N_LAYERS)] * 2},
                                  {"iterative": iterative, "random": randoms})
    assert len(losses) == 2 * N_LAYERS and np.allclose(losses["perplexity"], np.e)
    markers = collapse.collapse_markers(collapse.locate_collapse(iterative, CHANCE, n_resamples=100), iterative)
    assert markers["step"].tolist() == [10]


def test_schedule_comparison_orders_the_reference_first_and_measures_the_area_between_curves():
    late = np.where(np.arange(N_LAYERS) < 14, 0.8, CHANCE)  # collapses at step 14
    traces = {"block_influence": make_trace(cliff_accuracy(), "block_influence"),
              "decisive_first": make_trace(late, "decisive_first")}
    table = collapse.schedule_comparison(traces, CHANCE, n_resamples=200)
    assert list(table["schedule"]) == ["decisive_first", "block_influence"]
    assert list(table["collapse_step"]) == [14, 10] and table["area"].isna().tolist() == [True, False]
    # Steps 10..13 (fractions 0.50..0.65) are 0.55 apart; trapezoids over the steps 1/20 wide: 0.55 * 4 / 20.
    other = table.iloc[1]
    assert other["area"] == pytest.approx(0.55 * 4 / 20, abs=1e-9)
    assert other["area_low"] <= other["area"] <= other["area_high"]
    assert table["accuracy_half"].tolist() == pytest.approx([0.8, CHANCE], abs=1e-9)
    assert table.loc[0, "fraction_at_collapse"] == pytest.approx(14 / 20)
    sentence = collapse.describe_comparison(table, "block_influence", {"decisive_first": "Decisive-first",
                                                                       "block_influence": "BI"})
    assert sentence == ("Decisive-first collapses at step 14 (95% CI 14–14) and BI collapses at step 10 (95% CI 10–10); "
                        f"over the whole trace Decisive-first is better (area between the accuracy curves 0.110, "
                        f"95% CI [{other['area_low']:.3f}, {other['area_high']:.3f}])")
    assert collapse.describe_comparison(table, "reverse") == "reverse was not run, so it cannot be compared."
    with pytest.raises(ValueError, match="reference schedule 'decisive_first'"):
        collapse.schedule_comparison({"iterative": traces["block_influence"]}, CHANCE)
