"""Decision dynamics of pruned networks (claims.pruned_transitions, claims.mechanism, claims.predictions): transitions located in original layers, the C5b and P1
rules on traces built by hand, and the tidy tables against a trace run on a tiny model."""

from __future__ import annotations

import numpy as np
import pytest
from layercollapse.claims.mechanism import retention_table, verdict_c5b, verdict_c5b_registered
from layercollapse.claims.predictions import (
    collapse_odds,
    collapse_table,
    predicted_collapse_step,
    verdict_p1,
    verdict_p1b,
)
from layercollapse.claims.pruned_transitions import (
    dynamics_table,
    phase_networks,
    pruned_transition,
    seed_mean_dynamics,
    seed_transitions,
    transitions_along,
)
from layercollapse.measures import metrics
from layercollapse.pruning.trace import Trace
from layercollapse.pruning.engine import prune
from layercollapse.readout.lens import layerwise_scores
from layercollapse.measures.phases import Readout, phases_from_readout

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
    assert found.removed == (2, 4) and found.has_transition and found.dm_rising
    assert found.layers == (-1, 0, 1, 3, 5, 6, 7) and found.layer_ci == (6, 6)


def test_a_network_with_its_own_transition_has_it_whatever_its_accuracy():
    # the amended C5b counts the transition; the accuracy it costs is C5's business (and the registered rule's clause)
    trace = synthetic_trace([((), 5, 1.0), ((1,), None, 1.0), ((2,), 5, 0.4)])
    lost, lower = (pruned_transition(trace, step, n_resamples=200) for step in (1, 2))
    assert not lost.has_transition and lost.outcome == "prevented"
    # 0.4 + 0.6 x chance = 0.55 correct: far above chance (a transition), but far below the intact output
    assert lower.layer == 5 and lower.final_accuracy == pytest.approx(0.55) and lower.drop.low > 0
    assert lower.has_transition and not lower.retains_accuracy and not lower.keeps_transition_registered
    table = transitions_along(trace, intact_phases(trace), n_resamples=200)
    assert table["has_transition"].tolist() == [True, False, True]
    assert table["keeps_transition_registered"].tolist() == [True, False, False]
    assert table["transition_layer"].tolist()[0] == 5 and table["transition_layer"].isna().tolist() == [False, True, False]
    assert table["removed_phase"].tolist() == ["", "Silent", "Silent"]
    assert table["n_silent"].tolist() == [0, 1, 2] and table["n_decisive"].tolist() == [0, 0, 0]


@pytest.mark.parametrize("steps, outcome, expected, shift", [
    ([((), 5, 1.0), ((1,), 5, 1.0)], "kept", 5, 0),  # same place, same height
    ([((), 5, 1.0), ((1,), 5, 0.4)], "weakened", 5, 0),  # same place, height 0.75 -> 0.30
    ([((), 5, 1.0), ((1,), 7, 1.0)], "delayed", 5, 2),  # two layers later, with a point interval
    ([((), 5, 1.0), ((5,), 6, 1.0)], "kept", 6, 0),  # the transition layer removed: the next kept layer takes over
    ([((), 5, 1.0), ((1,), None, 1.0)], "prevented", 5, None),  # no transition of its own
    ([((), 5, 1.0), ((5, 6, 7), 3, 1.0)], "earlier", None, None),  # every layer from 5 on removed: nothing expected
])
def test_what_pruning_did_to_the_transition_follows_the_registered_classes(steps, outcome, expected, shift):
    trace = synthetic_trace(steps)
    found = pruned_transition(trace, 1, n_resamples=400)
    assert found.outcome == outcome and found.expected == expected
    assert (found.shift is None and shift is None) or found.shift[0] == shift


def test_the_height_is_the_readout_gain_across_the_transition_by_hand():
    trace = synthetic_trace([((), 5, 1.0), ((1,), 5, 0.4)])
    intact, pruned = (pruned_transition(trace, step, n_resamples=400) for step in (0, 1))
    # before the transition every item answers option 0: accuracy = chance = 0.25; after it 1.0 (intact), 0.55 (pruned)
    assert intact.height.estimate == pytest.approx(0.75) and pruned.height.estimate == pytest.approx(0.30)
    # Decision Margin: the answered option scores 0 against -2 for the others, so DM = +-(1 - e^-2) / (1 + 3 e^-2)
    margin = (1 - np.exp(-2)) / (1 + 3 * np.exp(-2))
    gold_zero = GOLD == 0
    before = np.where(gold_zero, margin, -margin).mean()
    assert intact.dm_height.estimate == pytest.approx(margin - before)
    after = np.where(np.arange(N_ITEMS) < 80, margin, np.where(gold_zero, margin, -margin)).mean()
    assert pruned.dm_height.estimate == pytest.approx(after - before)
    assert pruned.height_drop.estimate == pytest.approx(0.45) and pruned.height_drop.low > 0


def phase_networks_of(silent_has: int, decisive_has: int, n_seeds: int = 6, accuracy: float = 1.0):
    """Two steps of one-layer removals per seed; the first ``*_has`` seeds of each phase have a transition, at
    ``accuracy`` (Silent) or 1.0 (Decisive)."""
    silent = [synthetic_trace([((), 5, 1.0), ((1,), 5 if s < silent_has else None, accuracy),
                               ((2,), 5 if s < silent_has else None, accuracy)], seed=s) for s in range(n_seeds)]
    decisive = [synthetic_trace([((), 5, 1.0), ((6,), 5 if s < decisive_has else None, 1.0),
                                 ((7,), 5 if s < decisive_has else None, 1.0)], seed=s) for s in range(n_seeds)]
    phases = intact_phases(silent[0])
    return phase_networks({"Silent": silent, "Decisive": decisive}, phases, n_resamples=200), phases


def test_c5b_is_supported_when_silent_pruning_removes_the_transition_and_decisive_pruning_keeps_it():
    networks, phases = phase_networks_of(silent_has=0, decisive_has=6)
    table = retention_table(networks)
    assert table["k"].tolist() == [1, 2]
    assert table["transition_silent"].tolist() == [0, 0] and table["transition_decisive"].tolist() == [6, 6]
    # one-sided Fisher exact for 0/6 against 6/6: 1 / C(12, 6) = 1/924; Holm over two k doubles it
    assert table["p_transition"].tolist() == pytest.approx([1 / 924] * 2)
    assert table["p_holm_transition"].tolist() == pytest.approx([2 / 924] * 2)
    verdict = verdict_c5b(networks, phases, table=table)
    assert verdict.status == "supported" and verdict.value == 0.0 and verdict.p == pytest.approx(2 / 924)
    assert verdict.model == "synthetic" and verdict.task == "arc_easy" and verdict.key == "C5b@synthetic@arc_easy"
    assert "k = 1: 0/6 Silent, 6/6 Decisive" in verdict.text and "Silent 6 prevented" in verdict.text


def test_c5b_counts_a_transition_whatever_the_accuracy_the_registered_rule_does_not():
    # every Silent-pruned network keeps its transition in place but at a far lower accuracy
    networks, phases = phase_networks_of(silent_has=6, decisive_has=6, accuracy=0.4)
    table = retention_table(networks)
    assert table["transition_silent"].tolist() == [6, 6] and table["accuracy_silent"].tolist() == [0, 0]
    assert verdict_c5b(networks, phases, table=table).status == "not supported"
    registered = verdict_c5b_registered(networks, phases, table=table)
    assert registered.status == "supported" and registered.value == 0.0  # the accuracy clause alone decides it
    assert registered.rule.endswith("verdict_c5b_registered")
    assert set(networks.loc[networks["k"] > 0, "outcome"].where(networks["phase"] == "Silent").dropna()) == {"weakened"}


def test_the_retention_table_without_a_phase_is_empty():
    networks, _ = phase_networks_of(silent_has=3, decisive_has=6)
    assert len(retention_table(networks[networks["phase"] == "Silent"])) == 0


def test_c5b_is_not_supported_when_both_phases_keep_it_and_inconclusive_when_it_is_unclear():
    assert verdict_c5b(*phase_networks_of(6, 6)).status == "not supported"
    # 2 of 6 Silent seeds have one, 4 of 6 Decisive: not significant, and the Silent share is below both 1/2 and Decisive
    assert verdict_c5b(*phase_networks_of(2, 4)).status == "inconclusive"
    flat = synthetic_trace([((), None, 1.0), ((1,), None, 1.0)])
    networks = phase_networks({"Silent": [flat], "Decisive": [flat]}, intact_phases(flat), n_resamples=200)
    assert verdict_c5b(networks, intact_phases(flat)).status == "inconclusive"


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


@pytest.mark.slow
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
    networks, _ = phase_networks_of(silent_has=2, decisive_has=6, n_seeds=4)
    table = seed_transitions(networks[networks["phase"] == "Silent"])
    assert table["k"].tolist() == [0, 1, 2] and table["n_seeds"].eq(4).all()
    assert table["share_found"].tolist() == [1.0, 0.5, 0.5]
    # intact: Decisive from layer 5 = readout row 6; after removing layers 1 and 2, layer 5 is row 4
    assert table["depth_mean"].tolist() == [6.0, 5.0, 4.0]


def random_order_trace(order, collapse_when, seed: int) -> Trace:
    """A random-order trace over 8 layers (Silent 0-4, Decisive 5-7) whose output falls to chance at the first step
    where ``collapse_when(n_silent, n_decisive)`` holds, and stays there."""
    steps, removed, fallen = [((), 5, 1.0)], [], False
    for layer in order:
        removed.append(layer)
        n_silent = sum(gone < 5 for gone in removed)
        fallen = fallen or collapse_when(n_silent, len(removed) - n_silent)
        steps.append(((layer,), None if fallen else 5, 1.0))
    return synthetic_trace(steps, schedule="random", seed=seed)


@pytest.mark.parametrize("collapse_when, sign", [
    (lambda n_silent, n_decisive: n_silent + 0.25 * n_decisive >= 2.5, 1),  # Silent removals drive the collapse
    (lambda n_silent, n_decisive: 0.25 * n_silent + n_decisive >= 1.5, -1),  # Decisive removals do
])
def test_p1b_finds_which_removals_raise_the_odds_of_collapse(collapse_when, sign):
    rng = np.random.default_rng(0)
    # random orders of layers 0-6: the last Decisive layer (7) stays, so the readout always can have a transition
    traces = [random_order_trace(rng.permutation(N_LAYERS - 1), collapse_when, seed) for seed in range(16)]
    phases = intact_phases(traces[0])
    table = collapse_table(traces, phases)
    assert len(table) == 16 * 8 and set(table["design"]) == {"random order"}
    row = table.iloc[3]
    removed = traces[0].removal_order()[:3]
    assert (row["n_silent"], row["n_decisive"]) == (sum(layer < 5 for layer in removed), sum(layer >= 5 for layer in removed))
    odds = collapse_odds(table, n_resamples=200)
    assert odds.both_outcomes and np.sign(odds.difference.estimate) == sign
    verdict = verdict_p1b(odds, phases, model="synthetic")
    assert verdict.status == ("supported" if sign > 0 else "not supported")
    assert verdict.claim == "P1b" and verdict.ci == pytest.approx(odds.difference.ci)


def test_p1b_is_inconclusive_without_both_outcomes():
    traces = [random_order_trace([0, 1, 2], lambda n_silent, n_decisive: False, seed) for seed in range(3)]
    phases = intact_phases(traces[0])
    odds = collapse_odds(collapse_table(traces, phases), n_resamples=50)
    verdict = verdict_p1b(odds, phases, model="synthetic")
    assert verdict.status == "inconclusive" and "all intact" in verdict.text
