"""Decision dynamics of pruned networks (claims.dynamics): transitions located in original layers, the C5b and P1
rules on traces built by hand, and the tidy tables against a trace run on a tiny model."""

from __future__ import annotations

import numpy as np
import pytest
from layercollapse.claims.dynamics import (
    dynamics_table,
    predicted_collapse_step,
    pruned_transition,
    retention_table,
    seed_mean_dynamics,
    seed_transitions,
    transitions_along,
    verdict_c5b,
    verdict_p1,
)
from layercollapse.measures import metrics
from layercollapse.pruning.traces import Trace, prune
from layercollapse.readout.lens import layerwise_scores
from layercollapse.study.experiments import Readout, phases_from_readout

N_ITEMS, N_OPTIONS, N_LAYERS = 200, 4, 8
GOLD = np.arange(N_ITEMS) % N_OPTIONS  # balanced: chance = 0.25


def readout_row(decisive: bool, accuracy: float = 1.0) -> np.ndarray:
    """Scores [N_ITEMS, N_OPTIONS]: a Silent row answers option 0 everywhere (accuracy = chance); a Decisive row
    answers the gold option on the first ``accuracy`` share of the items and option 0 elsewhere."""
    scores = np.full((N_ITEMS, N_OPTIONS), -2.0, np.float32)
    answer = np.zeros(N_ITEMS, int)
    if decisive:
        n_right = round(accuracy * N_ITEMS)
        answer[:n_right] = GOLD[:n_right]
    scores[np.arange(N_ITEMS), answer] = 0.0
    return scores


def synthetic_trace(steps, schedule: str = "random_in_range", seed: int = 0) -> Trace:
    """A trace with a readout from a list of (removed at the step, first Decisive original layer or None,
    accuracy of the Decisive rows)."""
    kept_now, kept, scores, readout, readout_step, readout_layer, removed = list(range(N_LAYERS)), [], [], [], [], [], []
    for step, (gone, decisive_from, accuracy) in enumerate(steps):
        kept_now = [layer for layer in kept_now if layer not in gone]
        mask = np.zeros(N_LAYERS, bool)
        mask[kept_now] = True
        rows = [readout_row(decisive_from is not None and layer >= decisive_from, accuracy)
                for layer in (-1, *kept_now)]
        kept.append(mask), scores.append(rows[-1]), removed.append(tuple(gone))
        readout += rows
        readout_step += [step] * len(rows)
        readout_layer += [-1, *kept_now]
    spec = {"model": "synthetic", "task": "arc_easy", "schedule": schedule, "seed": seed}
    return Trace(spec, tuple(removed), np.array(kept), np.array(scores), np.full(len(steps), np.nan), GOLD, None,
                 np.array(readout), np.array(readout_step), np.array(readout_layer))


def intact_phases(trace: Trace):
    return phases_from_readout(Readout(trace.readout_at(0)[1], trace.gold, trace.spec), n_resamples=200)


def test_the_transition_of_a_pruned_network_is_reported_as_its_original_layer():
    # intact: Decisive from layer 5; removing layer 2 keeps it at original layer 5 (position 4 among the kept)
    trace = synthetic_trace([((), 5, 1.0), ((2,), 5, 1.0), ((4,), 6, 1.0)])
    assert intact_phases(trace).layer == 5
    assert [pruned_transition(trace, step, n_resamples=200).layer for step in range(3)] == [5, 5, 6]
    found = pruned_transition(trace, 2, n_resamples=200)
    assert found.removed == (2, 4) and found.keeps_transition and found.dm_rising
    assert found.layers == (-1, 0, 1, 3, 5, 6, 7) and found.layer_ci == (6, 6)


def test_a_network_without_a_transition_or_with_a_significantly_lower_output_loses_it():
    trace = synthetic_trace([((), 5, 1.0), ((1,), None, 1.0), ((2,), 5, 0.8)])
    lost, lower = (pruned_transition(trace, step, n_resamples=200) for step in (1, 2))
    assert lost.layer is None and not lost.keeps_transition
    # 0.8 + 0.2 x chance = 0.85 correct, far above chance (a transition), but 0.15 below the intact output
    assert lower.layer == 5 and lower.final_accuracy == pytest.approx(0.85) and lower.drop.low > 0
    assert not lower.keeps_transition
    table = transitions_along(trace, intact_phases(trace), n_resamples=200)
    assert table["keeps_transition"].tolist() == [True, False, False]
    assert table["transition_layer"].tolist()[0] == 5 and table["transition_layer"].isna().tolist() == [False, True, False]
    assert table["removed_phase"].tolist() == ["", "Silent", "Silent"]


def phase_traces(silent_keeps: int, decisive_keeps: int, n_seeds: int = 6):
    """Two steps of one-layer removals per seed; the first ``*_keeps`` seeds of each phase keep the transition."""
    silent = [synthetic_trace([((), 5, 1.0), ((1,), 5 if s < silent_keeps else None, 1.0),
                               ((2,), 5 if s < silent_keeps else None, 1.0)], seed=s) for s in range(n_seeds)]
    decisive = [synthetic_trace([((), 5, 1.0), ((6,), 5 if s < decisive_keeps else None, 1.0),
                                 ((7,), 5 if s < decisive_keeps else None, 1.0)], seed=s) for s in range(n_seeds)]
    return silent, decisive


def test_c5b_is_supported_when_silent_pruning_removes_the_transition_and_decisive_pruning_keeps_it():
    silent, decisive = phase_traces(silent_keeps=0, decisive_keeps=6)
    phases = intact_phases(silent[0])
    table = retention_table(silent, decisive, n_resamples=200)
    assert table["k"].tolist() == [1, 2]
    assert table["kept_silent"].tolist() == [0, 0] and table["kept_decisive"].tolist() == [6, 6]
    # one-sided Fisher exact for 0/6 against 6/6: 1 / C(12, 6) = 1/924; Holm over two k doubles it
    assert table["p"].tolist() == pytest.approx([1 / 924] * 2)
    assert table["p_holm"].tolist() == pytest.approx([2 / 924] * 2)
    verdict = verdict_c5b(silent, decisive, phases, n_resamples=200, table=table)
    assert verdict.status == "supported" and verdict.value == 0.0 and verdict.p == pytest.approx(2 / 924)
    assert "0 of 6 Silent-Phase seeds and 6 of 6 Decisive-Phase seeds" in verdict.text


def test_the_retention_table_without_a_phase_has_the_columns_of_a_filled_one():
    silent, decisive = phase_traces(silent_keeps=3, decisive_keeps=6)
    filled = retention_table(silent, decisive, n_resamples=200)
    empty = retention_table(silent, [], n_resamples=200)
    assert len(empty) == 0 and list(empty.columns) == list(filled.columns)


def test_c5b_is_not_supported_when_both_phases_keep_it_and_inconclusive_when_it_is_unclear():
    kept_both = verdict_c5b(*phase_traces(6, 6), intact_phases(phase_traces(6, 6)[0][0]), n_resamples=200)
    assert kept_both.status == "not supported"
    # 2 of 6 Silent seeds keep it, 4 of 6 Decisive: not significant, and the Silent share is below both 1/2 and Decisive
    unclear = verdict_c5b(*phase_traces(2, 4), intact_phases(phase_traces(2, 4)[0][0]), n_resamples=200)
    assert unclear.status == "inconclusive"
    flat = synthetic_trace([((), None, 1.0), ((1,), None, 1.0)])
    assert verdict_c5b([flat], [flat], intact_phases(flat)).status == "inconclusive"


def iterative_trace(collapse_step: int) -> Trace:
    """Iterative Pruning removing Decisive layers 7, 6 first, then Silent layers 2, 1, 0; the output falls to chance
    from ``collapse_step`` on."""
    order = [(), (7,), (6,), (2,), (1,), (0,)]
    return synthetic_trace([(gone, 5 if step < collapse_step else None, 1.0) for step, gone in enumerate(order)],
                           schedule="iterative")


@pytest.mark.parametrize("collapse_step, status", [(3, "supported"), (2, "not supported")])
def test_p1_compares_the_collapse_with_the_first_silent_phase_removal(collapse_step, status):
    trace = iterative_trace(collapse_step)
    phases = intact_phases(trace)
    assert phases.silent == [0, 1, 2, 3, 4] and predicted_collapse_step(trace, phases) == 3
    verdict = verdict_p1(trace, phases, n_resamples=200)
    assert verdict.status == status and verdict.value == collapse_step - 3
    assert "layer 2" in verdict.text and f"collapses at step {collapse_step}" in verdict.text


def test_p1_is_inconclusive_when_the_pruner_never_reaches_the_silent_phase():
    trace = synthetic_trace([((), 5, 1.0), ((7,), None, 1.0)], schedule="iterative")
    verdict = verdict_p1(trace, intact_phases(trace), n_resamples=200)
    assert verdict.status == "inconclusive" and "never removes a Silent-Phase layer" in verdict.text


def test_the_dynamics_tables_follow_a_real_trace(tiny_model, tokenizer, items):
    model = tiny_model("llama")
    evaluation = items[5:]
    trace = prune(model, tokenizer, evaluation, "random_in_range", layers=[0, 1, 2], seed=3, n_remove=2,
                  task="arc_easy", readout=True, progress=False)
    table = dynamics_table(trace, n_resamples=100)
    n_layers = trace.n_layers
    assert len(table) == sum(n_layers + 1 - k for k in range(3))  # every kept layer + the embeddings, per step
    for step in range(trace.n_steps):
        rows = table[table["step"] == step]
        kept = trace.kept_layers(step)
        assert rows["layer"].tolist() == [-1, *kept] and rows["depth"].tolist() == list(range(len(kept) + 1))
        reference = layerwise_scores(model, tokenizer, evaluation, "letter", layers=kept, task="arc_easy",
                                     progress=False)
        np.testing.assert_allclose(rows["accuracy"], metrics.accuracy(reference, trace.gold), atol=1e-12)
        found = pruned_transition(trace, step, n_resamples=100)
        rebuilt = phases_from_readout(Readout(reference, trace.gold, trace.spec), n_resamples=100)
        assert found.layer == (None if rebuilt.layer is None else kept[rebuilt.layer])
    means = seed_mean_dynamics([trace, trace])
    assert means["n_seeds"].eq(2).all() and len(means) == len(table)
    np.testing.assert_allclose(means["accuracy"], table["accuracy"])


def test_seed_transitions_summarise_the_pruned_networks_per_k():
    silent, _ = phase_traces(silent_keeps=2, decisive_keeps=6, n_seeds=4)
    table = seed_transitions(silent, intact_phases(silent[0]), n_resamples=200)
    assert table["k"].tolist() == [0, 1, 2] and table["n_seeds"].eq(4).all()
    assert table["share_found"].tolist() == [1.0, 0.5, 0.5] and table["share_kept"].tolist() == [1.0, 0.5, 0.5]
    # intact: Decisive from layer 5 = readout row 6; after removing layers 1 and 2, layer 5 is row 4
    assert table["depth_mean"].tolist() == [6.0, 5.0, 4.0]
