"""Verdict rules of C3a, C3b, C4, C5 and R2 on constructed readouts and traces with known answers."""

from __future__ import annotations

import numpy as np
import pytest
from layercollapse.claims import phase_pruning as PP
from layercollapse.claims import transition as T
from layercollapse.pruning.trace import Trace
from layercollapse.measures.phases import Readout, phases_from_readout

N_ITEMS, N_OPTIONS, N_LAYERS = 400, 4, 20
GOLD = np.arange(N_ITEMS) % N_OPTIONS  # balanced: chance = 0.25


def scores_for(predicted: np.ndarray) -> np.ndarray:
    """Log-scores that put ~98% probability on ``predicted``: float32 [..., n_items, n_options]."""
    scores = np.full(predicted.shape + (N_OPTIONS,), -5.0, dtype=np.float32)
    np.put_along_axis(scores, predicted[..., None], 0.0, axis=-1)
    return scores


def sharp_readout(transition: int = 8) -> Readout:
    """Rows up to the transition predict option A for every item; from the transition layer on, the gold option."""
    predicted = np.zeros((N_LAYERS + 1, N_ITEMS), dtype=np.int64)
    predicted[transition + 1:] = GOLD  # row l + 1 = after layer l
    return Readout(scores_for(predicted), GOLD, {"model": "toy", "task": "toy"})


def gradual_readout() -> Readout:
    """Accuracy rises linearly from 0 (embeddings) to 1 (last layer); wrong items spread over options."""
    predicted = np.stack([np.where(np.arange(N_ITEMS) < row * N_ITEMS // N_LAYERS, GOLD, (GOLD + 1) % N_OPTIONS)
                          for row in range(N_LAYERS + 1)])
    return Readout(scores_for(predicted), GOLD, {"model": "toy", "task": "toy"})


def spread_silent_readout(transition: int = 8) -> Readout:
    """Like ``sharp_readout`` but Silent rows answer a wrong option that rotates with the item (no collapse)."""
    predicted = np.tile((GOLD + 1) % N_OPTIONS, (N_LAYERS + 1, 1))
    predicted[transition + 1:] = GOLD
    return Readout(scores_for(predicted), GOLD, {"model": "toy", "task": "toy"})


def collapsed_readout() -> Readout:
    """Every row predicts option A: accuracy stays at chance, no transition."""
    return Readout(scores_for(np.zeros((N_LAYERS + 1, N_ITEMS), dtype=np.int64)), GOLD, {"model": "toy", "task": "toy"})


def phases(readout: Readout):
    return phases_from_readout(readout, n_resamples=200, seed=0)


def trace(correct_at_step: list[bool], seed: int = 0) -> Trace:
    """A phase trace whose step s answers every item correctly or predicts option A for all (chance)."""
    predicted = np.stack([GOLD if ok else np.zeros(N_ITEMS, dtype=np.int64) for ok in correct_at_step])
    n_steps = len(correct_at_step)
    kept = np.ones((n_steps, N_LAYERS), dtype=bool)
    for step in range(1, n_steps):
        kept[step, :step] = False
    removed = tuple(() if step == 0 else (step - 1,) for step in range(n_steps))
    spec = {"model": "toy", "task": "toy", "schedule": "random_in_range", "seed": seed}
    return Trace(spec, removed, kept, scores_for(predicted), np.full(n_steps, np.nan), GOLD)


# --- C3a ---------------------------------------------------------------------------------------

def test_window_is_about_a_tenth_of_depth_and_clipped():
    assert T.transition_window(8, 20) == (7, 10)  # h = 1: before layer 7 .. after layer 9
    assert T.transition_window(0, 10) == (0, 1)  # h = 0: across the transition layer alone
    assert T.transition_window(29, 30) == (28, 30)


def test_c3a_supported_for_a_one_layer_jump():
    readout = sharp_readout(8)
    ph = phases(readout)
    assert ph.layer == 8
    verdict = T.verdict_c3a(readout, ph, n_resamples=200)
    assert verdict.status == "supported" and verdict.value == pytest.approx(1.0) and verdict.ci[0] >= 0.5
    assert verdict.n == N_ITEMS and "layer 8" in verdict.text


def test_c3a_not_supported_for_a_gradual_rise_or_no_transition():
    readout = gradual_readout()
    ph = phases(readout)
    assert ph.layer is not None
    gradual = T.verdict_c3a(readout, ph, n_resamples=200)
    assert gradual.status == "not supported" and gradual.ci[1] < 0.5
    flat = collapsed_readout()
    none = T.verdict_c3a(flat, phases(flat), n_resamples=200)
    assert none.status == "not supported" and none.value is None


def test_transition_table_has_one_row_per_run():
    runs = [T.assess_transition(r, phases(r), n_resamples=100) for r in (sharp_readout(), collapsed_readout())]
    table = T.transition_table(runs)
    assert list(table["status"]) == ["supported", "not supported"] and table["transition_layer"].iloc[0] == 8


# --- C3b ---------------------------------------------------------------------------------------

def test_c3b_supported_when_silent_collapses_and_decisive_matches_gold():
    readout = sharp_readout()
    verdict = T.verdict_c3b(readout, phases(readout), n_resamples=200)
    assert verdict.status == "supported" and verdict.value == pytest.approx(1.0)
    table = T.phase_option_frequency(readout, phases(readout), n_resamples=100).set_index(["phase", "statistic"])
    assert table.loc[("Decisive Phase", "tv_gold"), "estimate"] == pytest.approx(0.0)
    assert table.loc[("Silent Phase", "of_entropy"), "estimate"] == pytest.approx(0.0)


def test_c3b_not_supported_when_silent_answers_spread_or_no_transition():
    readout = spread_silent_readout()
    spread = T.verdict_c3b(readout, phases(readout), n_resamples=200)
    assert spread.status == "not supported" and spread.value == pytest.approx(0.25)
    flat = collapsed_readout()
    assert T.verdict_c3b(flat, phases(flat), n_resamples=200).status == "not supported"


def test_depth_table_matches_metrics():
    readout = gradual_readout()
    table = T.readout_table(readout, phases(readout), n_resamples=100)
    assert list(table["layer"]) == list(range(-1, N_LAYERS))
    assert np.allclose(table["accuracy"], readout.frame()["accuracy"])
    assert np.allclose(table["mean_dm"], readout.frame()["mean_dm"])
    assert (table["accuracy_low"] <= table["accuracy"]).all() and (table["dm_low"] <= table["dm_high"]).all()
    heat = T.option_frequency_frame(readout.scores, range(-1, N_LAYERS))
    assert np.allclose(heat.groupby("layer")["fraction"].sum(), 1.0)


# --- C4, C5 ------------------------------------------------------------------------------------

def test_c4_supported_when_decisive_removal_costs_nothing_and_not_when_it_collapses():
    ph = phases(sharp_readout())
    harmless = [trace([True, True, True], seed) for seed in (0, 1)]
    assert PP.verdict_c4(harmless, ph, n_resamples=200).status == "supported"
    harmful = [trace([True, False, False], seed) for seed in (0, 1)]
    verdict = PP.verdict_c4(harmful, ph, n_resamples=200)
    assert verdict.status == "not supported" and verdict.value == pytest.approx(0.75)


def test_c5_supported_when_silent_removal_falls_to_chance_and_not_when_harmless():
    ph = phases(sharp_readout())
    decisive = [trace([True, True, True], seed) for seed in (0, 1)]
    collapsing = [trace([True, False, False], seed) for seed in (0, 1)]
    tests = PP.phase_pruning_tests(collapsing, decisive, n_resamples=200)
    assert list(tests["k"]) == [1, 2] and tests["reject"].all() and (tests["difference"] > 0).all()
    verdict = PP.verdict_c5(collapsing, decisive, ph, tests, n_resamples=200)
    assert verdict.status == "supported" and verdict.value == pytest.approx(0.25) and verdict.p < 0.05
    harmless = [trace([True, True, True], seed) for seed in (0, 1)]
    assert PP.verdict_c5(harmless, decisive, ph, n_resamples=200).status == "not supported"


def test_c5_needs_a_collapse_a_significant_cost_alone_passed_only_the_first_registered_rule():
    """One Silent layer costs accuracy, significantly more than a Decisive one, but leaves it far above chance: not the
    collapse C5 claims. The amended rule says not supported; the first registered rule said supported."""
    ph = phases(sharp_readout())
    decisive = [trace([True, True, True], seed) for seed in (0, 1)]
    costly = []
    for seed in (0, 1):  # step 1: the first 70% of the items still right, the rest answer A
        base = trace([True, True, True], seed)
        predicted = np.where(np.arange(N_ITEMS) < 0.7 * N_ITEMS, GOLD, 0)
        scores = base.scores.copy()
        scores[1:] = scores_for(np.stack([predicted, predicted]))
        costly.append(Trace(base.spec, base.removed, base.kept, scores, base.criterion, GOLD))
    tests = PP.phase_pruning_tests(costly, decisive, n_resamples=200)
    amended = PP.verdict_c5(costly, decisive, ph, tests, n_resamples=200)
    first = PP.verdict_c5_registered(costly, decisive, ph, tests, n_resamples=200)
    assert amended.value == pytest.approx(0.7 + 0.3 / 4, abs=0.01) and amended.p < 0.05
    assert amended.status == "not supported" and first.status == "supported"
    assert amended.rule.endswith("verdict_c5") and first.rule.endswith("verdict_c5_registered")
    summary = PP.c5_summary(amended, first, ph)
    assert "so C5 is *not supported* and one Silent layer does not collapse the model" in summary
    assert "said *supported*" in summary and "differ significantly" in summary


def test_c4_c5_inconclusive_without_a_transition_and_table_shape():
    flat = phases(collapsed_readout())
    silent = [trace([False, False], seed) for seed in (0, 1)]
    assert PP.verdict_c4([], flat).status == "inconclusive"
    assert PP.verdict_c5(silent, [], flat).status == "inconclusive"
    table = PP.phase_pruning_table({"silent": silent, "decisive": []}, n_resamples=50)
    assert list(table["phase"]) == ["silent", "silent"] and (table["n_seeds"] == 2).all()


# --- R2 ----------------------------------------------------------------------------------------

def test_r2_supported_when_lenses_agree_and_not_when_tuned_reads_much_earlier():
    logit = phases(sharp_readout(8))
    same = T.verdict_r2(logit, phases(sharp_readout(8)), N_ITEMS)
    assert same.status == "supported" and same.value == 0
    earlier = T.verdict_r2(logit, phases(sharp_readout(2)), N_ITEMS)
    assert earlier.status == "not supported" and earlier.value == 6 and earlier.ci == (6.0, 6.0)


def test_r2_without_transitions():
    flat, sharp = phases(collapsed_readout()), phases(sharp_readout(8))
    assert T.verdict_r2(flat, flat, N_ITEMS).status == "not supported"
    assert T.verdict_r2(sharp, flat, N_ITEMS).status == "inconclusive"
    assert T.verdict_r2(flat, sharp, N_ITEMS).status == "inconclusive"
