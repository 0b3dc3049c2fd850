"""Greedy margins: every candidate's criterion replayed along a trace, the runner-up, near ties, criterion noise."""

from __future__ import annotations

import numpy as np
import pytest
from layercollapse.measures import metrics
from layercollapse.pruning.margins import (
    NOISE_BUDGETS,
    criterion_noise,
    greedy_margins,
    noise_probe_steps,
    replay_candidates,
)
from layercollapse.pruning.trace import Trace
from layercollapse.pruning.engine import prune
from layercollapse.readout.scoring import score


@pytest.fixture(scope="module")
def split(items):
    return items[:5], items[5:]


def naive_dm(model, tokenizer, calibration, kept) -> float:
    """Mean DM of the calibration items scored by the whole network ``kept`` from scratch."""
    scores = score(model, tokenizer, calibration, "letter", layers=kept, task="arc_easy", progress=False)
    return float(metrics.mean_decision_margin(scores, np.array([item.gold for item in calibration])))


@pytest.mark.parametrize("schedule, layers", [("iterative", None), ("decisive_first", [1, 3])])
def test_the_replay_scores_every_candidate_as_the_naive_pruned_network_and_finds_the_trace_s_choice(
        tiny_model, tokenizer, split, schedule, layers):
    model = tiny_model("llama")
    calibration, evaluation = split
    trace = prune(model, tokenizer, evaluation, schedule, calibration=calibration, layers=layers, task="arc_easy",
                  progress=False)
    values = replay_candidates(model, tokenizer, trace, calibration)
    assert values.shape == (trace.n_steps, trace.n_layers) and np.isnan(values[0]).all()
    for step in range(1, trace.n_steps):
        kept = trace.kept_layers(step - 1)
        candidates = [layer for layer in kept if layer in (layers or ())] or list(kept)
        assert list(np.flatnonzero(~np.isnan(values[step]))) == candidates
        for layer in candidates:
            expected = naive_dm(model, tokenizer, calibration, [k for k in kept if k != layer])
            assert values[step, layer] == pytest.approx(expected, abs=1e-5)
        assert values[step, trace.removed[step][0]] == pytest.approx(trace.criterion[step], abs=1e-6)
    table = greedy_margins(trace, values, noise=0.0)
    assert table["replay_agrees"].all() and list(table["removed"]) == trace.removal_order()


def constructed_trace(criterion: str) -> Trace:
    """A 4-layer greedy trace that removed 2, then 0, then 1."""
    kept = np.array([[1, 1, 1, 1], [1, 1, 0, 1], [0, 1, 0, 1], [0, 0, 0, 1]], dtype=bool)
    spec = {"schedule": "iterative", "criterion": criterion, "model": "m", "task": "t"}
    return Trace(spec, ((), (2,), (0,), (1,)), kept, np.zeros((4, 1, 2), np.float32), np.zeros(4),
                 np.zeros(1, np.int64))


def test_margins_of_constructed_candidate_values_are_the_hand_computed_ones():
    nan = np.nan
    values = np.array([[nan, nan, nan, nan],
                       [0.50, 0.40, 0.90, 0.88],   # best 2 (0.90), runner-up 3: margin 0.02
                       [0.70, 0.70, nan, 0.10],    # tie 0 / 1: the lower layer is best, margin 0
                       [nan, 0.30, nan, 0.20]])    # best 1, runner-up 3: margin 0.10
    table = greedy_margins(constructed_trace("dm"), values, noise=0.05)
    assert list(table["best"]) == [2, 0, 1] and list(table["runner_up"]) == [3, 1, 3]
    np.testing.assert_allclose(table["margin"], [0.02, 0.0, 0.10], atol=1e-12)
    assert list(table["near_tie"]) == [True, True, False] and table["replay_agrees"].all()
    # a criterion that is minimised (LM loss): the best is the smallest value
    loss = greedy_margins(constructed_trace("lm_loss"), values, noise=0.05)
    assert list(loss["best"]) == [1, 3, 3] and list(loss["runner_up"]) == [0, 0, 1]
    np.testing.assert_allclose(loss["margin"], [0.10, 0.60, 0.10], atol=1e-12)
    assert list(loss["replay_agrees"]) == [False, False, False]


def test_a_single_candidate_has_no_runner_up_and_no_near_tie():
    values = np.full((4, 4), np.nan)
    values[1, 2], values[2, 0], values[3, 1] = 0.5, 0.4, 0.3
    table = greedy_margins(constructed_trace("dm"), values, noise=1.0)
    assert table["runner_up"].isna().all() and table["margin"].isna().all() and not table["near_tie"].any()


def test_in_fp32_the_criterion_does_not_move_with_the_token_budget(tiny_model, tokenizer, split):
    model = tiny_model("llama")
    calibration, evaluation = split
    trace = prune(model, tokenizer, evaluation, "iterative", calibration=calibration, task="arc_easy", progress=False)
    steps = noise_probe_steps(trace.n_steps)
    assert steps == [0, 1, 2, 3]
    noise = criterion_noise(model, tokenizer, trace, calibration, steps)
    assert noise.shape == (len(steps), len(NOISE_BUDGETS))
    np.testing.assert_allclose(noise[:, 0], trace.criterion[steps], atol=1e-5)  # the trace's own values
    assert np.ptp(noise, axis=1).max() < 1e-5


def test_only_greedy_traces_have_candidates(tiny_model, tokenizer, split):
    model = tiny_model("llama")
    trace = prune(model, tokenizer, split[1], "reverse", task="arc_easy", progress=False)
    with pytest.raises(ValueError, match="trace schedule 'reverse' is not greedy"):
        replay_candidates(model, tokenizer, trace, split[0])
