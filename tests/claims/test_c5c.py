"""C5c (claims.mechanism): does Silent pruning remove the transition beyond the accuracy it costs? The rule on synthetic
networks where the phase effect exists at equal accuracy, where accuracy explains it all, and where data are too few;
and the height-free location of a transition (measures.phases.steepest_rise) on hand-built readouts."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from layercollapse.claims.mechanism import (
    C5C_MARGIN,
    C5C_MIN_OVERLAP,
    c5c_account,
    transition_curves,
    transition_odds,
    verdict_c5c,
    verdict_c5c_registered,
)
from layercollapse.claims.pruned_transitions import outcome_changes, phase_networks, pruned_transition
from layercollapse.measures import metrics
from layercollapse.measures.phases import Readout, phases_from_readout, steepest_rise
from layercollapse.pruning.trace import Trace
from scipy.special import expit

N_ITEMS, N_OPTIONS = 400, 4
GOLD = np.arange(N_ITEMS) % N_OPTIONS  # balanced: chance = 0.25


# ------------------------------------------------------------------ the height-free location


def readout_of(rows) -> np.ndarray:
    """Scores float32 [n_rows, N_ITEMS, N_OPTIONS] from (accuracy, close) per row: the row answers ``accuracy`` of the
    items correctly (the gold option on a share of the items with gold != 0, option 0 elsewhere, which is right on the
    gold-0 items); the answered option scores 0, the others -2, and where ``close`` the gold option of a wrongly
    answered item scores -0.1 (a close second: its Decision Margin rises to just below 0 without the answer changing)."""
    scores = np.full((len(rows), N_ITEMS, N_OPTIONS), -2.0, np.float32)
    not_zero = np.flatnonzero(GOLD != 0)  # [3/4 N_ITEMS]
    for row, (accuracy, close) in enumerate(rows):
        answer = np.zeros(N_ITEMS, int)
        n_more = round((accuracy - 0.25) * N_ITEMS)  # beyond the gold-0 items, which option 0 answers
        answer[not_zero[:n_more]] = GOLD[not_zero[:n_more]]
        if close:
            scores[row, np.arange(N_ITEMS), GOLD] = -0.1
        scores[row, np.arange(N_ITEMS), answer] = 0.0
    return scores


#: Embeddings and layers 0..7 as (accuracy, close). Intact: at chance to layer 2, then 0.95 from layer 3 (the jump).
#: Lowered: the same Decision Margin jump at layer 3, where the gold option becomes a close second, but the accuracy
#: stays at chance until layer 6: the readout rises where the intact one does, only lower.
INTACT = [(0.25, False)] * 4 + [(0.95, True)] * 5
LOWERED = [(0.25, False)] * 4 + [(0.25, True)] * 3 + [(0.45, True)] * 2


def test_the_steepest_rise_stays_where_the_readout_rises_when_the_level_is_lower():
    intact, lowered = readout_of(INTACT), readout_of(LOWERED)
    assert metrics.accuracy(lowered, GOLD).tolist() == pytest.approx([accuracy for accuracy, _ in LOWERED])
    # the registered location (first layer whose accuracy band stays above chance) moves with the level ...
    intact_phases = phases_from_readout(Readout(intact, GOLD, {}), n_resamples=400)
    lowered_phases = phases_from_readout(Readout(lowered, GOLD, {}), n_resamples=400)
    assert (intact_phases.layer, intact_phases.layer_ci) == (3, (3, 3))
    assert (lowered_phases.layer, lowered_phases.layer_ci) == (6, (6, 6))
    # ... the steepest rise of mean DM does not: row 4 reads the output of layer 3 in both
    for scores in (intact, lowered):
        rise = steepest_rise(scores, GOLD, n_resamples=400)
        assert rise.row == 4 and rise.row_ci == (4, 4)
    # by hand: a wrong item's DM goes from (e^-2 - 1) / (1 + 3 e^-2) to (e^-0.1 - 1) / (1 + e^-0.1 + 2 e^-2) on the 3/4
    # of the items answered wrongly
    before = (np.exp(-2) - 1) / (1 + 3 * np.exp(-2))
    after = (np.exp(-0.1) - 1) / (1 + np.exp(-0.1) + 2 * np.exp(-2))
    assert steepest_rise(lowered, GOLD, n_resamples=10).gain == pytest.approx(0.75 * (after - before), rel=1e-5)


def test_the_steepest_rise_takes_the_first_of_equal_rises_and_needs_two_rows():
    scores = readout_of([(0.25, False), (0.5, False), (0.75, False), (0.75, False)])
    assert steepest_rise(scores, GOLD, n_resamples=10).row == 1
    assert steepest_rise(scores[:1], GOLD) is None


def trace_of(*readouts, removed=((), (1,))) -> Trace:
    """A trace of the 8-layer network whose step s has the readout ``readouts[s]`` (rows: embeddings, kept layers)."""
    kept_now, kept, scores, readout, readout_step, readout_layer = list(range(8)), [], [], [], [], []
    for step, (gone, rows) in enumerate(zip(removed, readouts)):
        kept_now = [layer for layer in kept_now if layer not in gone]
        mask = np.zeros(8, bool)
        mask[kept_now] = True
        kept.append(mask), scores.append(rows[-1])
        readout += list(rows)
        readout_step += [step] * len(rows)
        readout_layer += [-1, *kept_now]
    spec = {"model": "synthetic", "task": "arc_easy", "schedule": "random_in_range", "seed": 0}
    return Trace(spec, tuple(removed), np.array(kept), np.array(scores), np.full(len(readouts), np.nan), GOLD, None,
                 np.array(readout), np.array(readout_step), np.array(readout_layer))


def test_a_lower_readout_is_delayed_by_the_registered_classes_and_weakened_by_where_it_rises():
    # layer 1 removed (Silent): the pruned readout has the lowered curve over the kept layers 0, 2, ..., 7
    lowered = np.delete(readout_of(LOWERED), 2, axis=0)  # drop the row of layer 1
    trace = trace_of(readout_of(INTACT), lowered)
    found = pruned_transition(trace, 1, n_resamples=400)
    assert found.has_transition and (found.layer, found.expected, found.outcome) == (6, 3, "delayed")
    assert found.rise_layer == 3 and found.rise_expected == 3 and found.rise_shift == (0, 0, 0)
    assert found.outcome_rise == "weakened"  # in place, and far lower
    networks = phase_networks({"Silent": [trace]}, None, n_resamples=400)
    assert networks.loc[1, ["outcome", "outcome_rise", "rise_layer"]].tolist() == ["delayed", "weakened", 3]
    changes = outcome_changes(networks)
    assert changes[["phase", "k", "n", "changed"]].values.tolist() == [["Silent", 1, 1, 1]]
    assert changes.loc[0, "changes"] == "1 delayed → weakened"
    assert (changes.loc[0, "registered"], changes.loc[0, "amended"]) == ("1 delayed", "1 weakened")


def test_a_rise_that_moved_is_delayed_by_both_rules():
    moved = [(0.25, False)] * 7 + [(0.95, True)] * 2  # the jump at layer 6 instead of 3
    trace = trace_of(readout_of(INTACT), np.delete(readout_of(moved), 2, axis=0))
    found = pruned_transition(trace, 1, n_resamples=400)
    assert (found.outcome, found.outcome_rise, found.rise_layer, found.rise_shift) == ("delayed", "delayed", 6, (3, 3, 3))


# ------------------------------------------------------------------ the C5c rule


class IntactPhases:
    """The intact network's phases as the rule reads them (a transition at layer 5, or none)."""

    def __init__(self, layer: int | None = 5) -> None:
        self.layer = layer


def networks_of(accuracy, has_transition, n_seeds: int = 10, k_max: int = 6, seed: int = 0) -> pd.DataFrame:
    """Phase-targeted networks (k = 0..k_max per seed and phase): ``accuracy(phase, k, rng)`` their final accuracy,
    ``has_transition(phase, accuracy, rng)`` whether their readout has a transition."""
    rng = np.random.default_rng(seed)
    rows = []
    for phase in ("Silent", "Decisive"):
        for trace_seed in range(n_seeds):
            for k in range(k_max + 1):
                value = 0.8 if k == 0 else accuracy(phase, k, rng)
                rows.append({"phase": phase, "k": k, "seed": trace_seed, "final_accuracy": value,
                             "has_transition": True if k == 0 else bool(has_transition(phase, value, rng)),
                             "model": "synthetic", "task": "arc_easy"})
    return pd.DataFrame(rows)


def test_c5c_is_supported_where_silent_pruning_removes_transitions_at_equal_accuracy():
    # both phases cover the same accuracies; Silent-pruned networks have a transition 15% of the time, Decisive 85%
    networks = networks_of(lambda phase, k, rng: rng.uniform(0.3, 0.8),
                           lambda phase, acc, rng: rng.random() < (0.15 if phase == "Silent" else 0.85))
    fit = transition_odds(networks, n_resamples=300)
    assert fit.n_networks == 120 and fit.n_traces == 20 and fit.draws.shape == (300, 3)
    assert fit.silent.high < 0 and fit.silent.estimate == pytest.approx(fit.params[1])
    verdict = verdict_c5c(fit, IntactPhases())
    assert verdict.status == "supported" and verdict.key == "C5c@synthetic@arc_easy" and verdict.n == 20
    assert verdict.ci == pytest.approx(fit.silent.ci) and verdict.rule.endswith("mechanism.verdict_c5c")
    assert c5c_account(verdict) == "Silent pruning removes the transition beyond its accuracy cost."


def test_c5c_is_not_supported_where_accuracy_explains_which_networks_keep_a_transition():
    # Silent pruning costs more accuracy, but in both phases a network has a transition exactly when its accuracy
    # is above about 0.45 (steeply, but not exactly: exactly, only the networks at 0.45 would inform the fit): C5b would see fewer Silent transitions, C5c sees no phase effect at equal accuracy
    networks = networks_of(lambda phase, k, rng: rng.uniform(0.25, 0.65) if phase == "Silent" else rng.uniform(0.35, 0.75),
                           lambda phase, acc, rng: rng.random() < expit(15 * (acc - 0.45)), n_seeds=20)
    pruned = networks[networks["k"] > 0]
    by_phase = pruned.groupby("phase")["has_transition"].mean()
    assert by_phase["Silent"] < by_phase["Decisive"] - 0.2  # the raw shares differ ...
    fit = transition_odds(networks, n_resamples=300)
    assert fit.silent.low > C5C_MARGIN and fit.accuracy.low > 0  # ... the phase adds nothing once accuracy is in
    verdict = verdict_c5c(fit, IntactPhases())
    assert verdict.status == "not supported"
    assert c5c_account(verdict).startswith("The data show that Silent layers cost more accuracy")


def test_c5c_is_inconclusive_with_too_few_traces_and_without_a_transition_to_lose():
    few = networks_of(lambda phase, k, rng: rng.uniform(0.3, 0.8),
                      lambda phase, acc, rng: rng.random() < (0.4 if phase == "Silent" else 0.6), n_seeds=2, k_max=2)
    fit = transition_odds(few, n_resamples=300)
    assert fit.silent.low < C5C_MARGIN < 0 < fit.silent.high
    assert verdict_c5c(fit, IntactPhases()).status == "inconclusive"
    assert verdict_c5c(fit, IntactPhases(None)).status == "inconclusive"  # the intact network has no transition
    all_have = networks_of(lambda phase, k, rng: rng.uniform(0.3, 0.8), lambda phase, acc, rng: True, n_seeds=3)
    verdict = verdict_c5c(transition_odds(all_have, n_resamples=50), IntactPhases())
    assert verdict.status == "inconclusive" and verdict.value is None and "all of its 36" in verdict.text
    silent_only = few[few["phase"] == "Silent"]
    assert transition_odds(silent_only) is None
    verdict = verdict_c5c(None, IntactPhases(), model="synthetic", task="arc_easy")
    assert verdict.status == "inconclusive" and verdict.key == "C5c@synthetic@arc_easy"


def test_c5c_fits_the_registered_model_and_its_curves_follow_the_fit():
    networks = networks_of(lambda phase, k, rng: rng.uniform(0.3, 0.8),
                           lambda phase, acc, rng: rng.random() < expit(-1 + 4 * acc - (1.0 if phase == "Silent" else 0)))
    fit = transition_odds(networks, n_resamples=100)
    # the fit on every network is Firth's: its penalised score X'(y - p + h (1/2 - p)) vanishes at the estimate
    pruned = networks[networks["k"] > 0]
    exog = np.column_stack([np.ones(len(pruned)), pruned["phase"].eq("Silent"), pruned["final_accuracy"]]).astype(float)
    outcome = pruned["has_transition"].to_numpy(float)
    p = expit(exog @ np.array(fit.params))
    weighted = exog * (p * (1 - p))[:, None]
    hat = np.einsum("ij,jk,ik->i", exog, np.linalg.inv(exog.T @ weighted), weighted)  # diagonal of the hat matrix
    assert np.allclose(exog.T @ (outcome - p + hat * (0.5 - p)), 0, atol=1e-6)
    assert fit.identified == 1.0 and fit.n_shared[0] >= C5C_MIN_OVERLAP
    curves = transition_curves(fit, n_points=5)
    assert len(curves) == 10 and set(curves["phase"]) == {"Silent", "Decisive"}
    top = curves[(curves["phase"] == "Silent")].iloc[-1]
    assert top["final_accuracy"] == pytest.approx(fit.accuracy_range[1])
    assert top["probability"] == pytest.approx(expit(fit.params[0] + fit.params[1] + fit.params[2] * top["final_accuracy"]))
    assert (curves["low"] <= curves["high"]).all()
    assert math.isclose(C5C_MARGIN, math.log(0.25))


def test_c5c_is_not_decided_where_the_phases_do_not_overlap_in_accuracy():
    # Silent-pruned networks all near chance and without a transition, Decisive-pruned ones all high with one: phase
    # and accuracy separate the outcome together, so the fit, not the data, splits the effect between b_S and b_acc
    networks = networks_of(lambda phase, k, rng: rng.uniform(0.22, 0.30) if phase == "Silent" else rng.uniform(0.6, 0.8),
                           lambda phase, acc, rng: phase == "Decisive")
    fit = transition_odds(networks, n_resamples=200)
    assert fit.shared_range[0] > fit.shared_range[1] and fit.n_shared == (0, 0)  # no accuracy both phases reach
    amended = verdict_c5c(fit, IntactPhases())
    assert amended.status == "inconclusive" and "barely overlap" in amended.text
    assert amended.value == pytest.approx(fit.silent.estimate)
    assert c5c_account(amended).startswith("The data cannot tell the two accounts apart: the phases barely overlap")
    registered = verdict_c5c_registered(fit, IntactPhases())  # the first rule decides on the separation itself:
    assert registered.rule.endswith("verdict_c5c_registered") and registered.ci == amended.ci
    assert fit.silent.high < 0 and registered.status == "supported"  # "supported" by the confound it was meant to remove
