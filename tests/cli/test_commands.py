"""The command line, tried as a user would: every command's output, its one-line errors before any work, and a
killed ``prune`` that resumes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from layercollapse.cli.arguments import layer_spans
from layercollapse.cli.main import main
from layercollapse.measures import metrics
from layercollapse.pruning.engine import prune
from layercollapse.pruning.trace import Trace, iter_traces
from layercollapse.readout.scoring import score
from layercollapse.storage.store import Store


def test_cli_prints_the_per_step_table_and_where_the_trace_is(tiny_model, tokenizer, tmp_path, capsys):
    folder = tmp_path / "tiny"
    tiny_model("llama").save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    code = main(["prune", "--model", str(folder), "--dtype", "fp32", "--limit", "6", "--n-calibration", "4",
                 "--store", str(tmp_path / "store")])
    out = capsys.readouterr().out
    assert code == 0
    assert "step  removed" in out and "trace stored in" in out
    assert len([line for line in out.splitlines() if line.strip()[:1].isdigit()]) == 5
    assert len(list((tmp_path / "store" / "trace").glob("*.arrays.parquet"))) == 1


@pytest.mark.parametrize("argv, message", [
    (["prune", "--layers", "3:x"], "argument --layers: invalid layer range '3:x'"),
    (["prune", "--layers", "5:5"], "argument --layers: invalid layer range '5:5'"),
    (["evaluate", "--limit", "-5"], "argument --limit: '-5' is not a positive integer"),
    (["evaluate", "--limit", "0"], "argument --limit: '0' is not a positive integer"),
    (["evaluate", "--seed", "-1"], "argument --seed: '-1' is not a non-negative integer (an integer >= 0)"),
    (["evaluate", "--dtype", "fp64"], "argument --dtype: invalid choice: 'fp64'"),
    (["prune", "--n-calibration", "0"], "argument --n-calibration: '0' is not a positive integer"),
    (["prune", "--n-remove", "-2"], "argument --n-remove: '-2' is not a non-negative integer"),
    (["prune", "--items-seed", "x"], "argument --items-seed: 'x' is not a non-negative integer"),
    (["prune", "--layers", "1,2"],
     "error: --layers applies only to --schedule random_in_range or decisive_first, not to 'iterative'"),
    (["prune", "--schedule", "decisive_first"], "error: --schedule decisive_first needs --layers"),
    (["diagnose", "--shots", "-1"], "argument --shots: '-1' is not a non-negative integer"),
    (["prune", "--shots", "x"], "argument --shots: 'x' is not a non-negative integer"),
    (["prune", "--schedule", "random_in_range"], "error: --schedule random_in_range needs --layers"),
    (["prune", "--passages", "p.txt"], "error: --passages applies only to --criterion lm_loss, not to 'dm'"),
    (["prune", "--schedule", "reverse", "--criterion", "acc"], "error: --criterion applies only to --schedule iterative or decisive_first"),
    (["prune", "--criterion", "lm_loss", "--passages", "/no/such.txt"], "error: --passages /no/such.txt: no such file"),
])
def test_bad_arguments_are_refused_in_one_line_before_any_work(argv, message, capsys, monkeypatch):
    from layercollapse.cli.main import main
    from layercollapse.data import tasks
    from layercollapse.model import loading as models

    def no_work(*args, **kwargs):
        raise AssertionError("data or a model was loaded before the arguments were checked")

    monkeypatch.setattr(tasks, "load_task", no_work)
    monkeypatch.setattr(models, "load_model", no_work)
    with pytest.raises(SystemExit) as exited:
        main(argv)
    err = capsys.readouterr().err
    assert exited.value.code == 2 and message in err.strip().splitlines()[-1]  # one line (argparse prints usage first)


def test_cli_prune_without_store_writes_to_the_user_cache_and_checks_steps_against_the_model(
        tiny_model, tokenizer, tmp_path, capsys, monkeypatch):
    folder = tmp_path / "tiny"
    tiny_model("llama").save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    monkeypatch.delenv("LAYERCOLLAPSE_STORE", raising=False)
    monkeypatch.setenv("LAYERCOLLAPSE_CACHE", str(tmp_path / "cache"))
    assert main(["prune", "--model", str(folder), "--dtype", "fp32", "--limit", "4", "--n-calibration", "2",
                 "--schedule", "reverse"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"results store: {tmp_path / 'cache' / 'store'}"
    assert len(list((tmp_path / "cache" / "store" / "trace").glob("*.json"))) == 1
    with pytest.raises(SystemExit) as exited:
        main(["prune", "--model", str(folder), "--dtype", "fp32", "--limit", "4", "--n-calibration", "2",
              "--schedule", "reverse", "--n-remove", "99"])
    assert exited.value.code == 2 and "n_remove=99 is outside 0..4 for schedule 'reverse' on 5 layers" in capsys.readouterr().err


def test_cli_evaluate_says_when_a_cloze_template_is_not_the_harness_s(tiny_model, tokenizer, tmp_path, capsys):
    from layercollapse.data.tasks import TASK_REGISTRY

    assert [name for name, spec in TASK_REGISTRY.items() if not spec.harness_cloze] == ["commonsense_qa"]
    folder = tmp_path / "tiny"
    tiny_model("llama").save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    for task, noted in (("commonsense_qa", True), ("arc_easy", False)):
        assert main(["evaluate", "--model", str(folder), "--dtype", "fp32", "--task", task, "--format", "cloze",
                     "--limit", "2"]) == 0
        assert ("note: lm-evaluation-harness has no cloze variant of commonsense_qa" in capsys.readouterr().out) is noted


KILLED_CLI_RUN = """
import os, signal, sys
from layercollapse.storage import store as store_module
from layercollapse.cli.main import main

die_after = int(sys.argv[1])
append = store_module.Checkpoint.append_step
def append_then_maybe_die(self, step, row, arrays=None):
    append(self, step, row, arrays)
    if step == die_after:
        os.kill(os.getpid(), signal.SIGKILL)
store_module.Checkpoint.append_step = append_then_maybe_die
sys.exit(main(sys.argv[2:]))
"""


def _prune_cli(folder: Path, store: Path, die_after: int = -1) -> subprocess.CompletedProcess:
    argv = ["prune", "--model", str(folder), "--dtype", "fp32", "--limit", "6", "--n-calibration", "4",
            "--store", str(store)]
    return subprocess.run([sys.executable, "-c", KILLED_CLI_RUN, str(die_after), *argv], capture_output=True,
                          text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})


def _only_trace(store: Path) -> Trace:
    (sidecar,) = [path for path in (store / "trace").glob("*.json") if path.name.count(".") == 1]
    return Trace.load(Store(store), json.loads(sidecar.read_text())["spec"])


@pytest.mark.slow
def test_cli_prune_killed_mid_run_resumes_to_the_uninterrupted_trace(tiny_folder, tmp_path):
    killed = _prune_cli(tiny_folder, tmp_path / "resumed", die_after=2)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert len(list((tmp_path / "resumed" / "trace").glob("*.partial/step_*.json"))) == 3
    assert _prune_cli(tiny_folder, tmp_path / "resumed").returncode == 0
    assert _prune_cli(tiny_folder, tmp_path / "whole").returncode == 0
    resumed, whole = _only_trace(tmp_path / "resumed"), _only_trace(tmp_path / "whole")
    assert resumed.key == whole.key and resumed.removal_order() == whole.removal_order()
    np.testing.assert_array_equal(resumed.scores, whole.scores)
    assert not list((tmp_path / "resumed" / "trace").glob("*.partial"))


@pytest.mark.slow
def test_cli_prune_reports_a_garbled_trace_in_one_line_and_recomputes_it(tiny_folder, tmp_path):
    store = tmp_path / "store"
    assert _prune_cli(tiny_folder, store).returncode == 0
    whole = _only_trace(store)
    (arrays,) = (store / "trace").glob("*.arrays.parquet")
    arrays.write_bytes(arrays.read_bytes()[: arrays.stat().st_size // 2])
    rerun = _prune_cli(tiny_folder, store)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    damage = [line for line in rerun.stderr.splitlines() if str(arrays.name) in line]
    assert len(damage) == 1 and damage[0].startswith("warning: ") and "CorruptResultWarning" in damage[0], rerun.stderr[-2000:]
    recomputed = _only_trace(store)
    np.testing.assert_array_equal(recomputed.scores, whole.scores)


def test_layer_spans_compress_runs_of_layers():
    assert layer_spans([7, 0, 1, 2, 5, 8]) == "0–2, 5, 7–8"
    assert layer_spans([3]) == "3" and layer_spans([]) == "none"


def test_cli_diagnose_prints_the_phases_and_the_measured_cost_of_each_layer(tiny_folder, capsys):
    from layercollapse.data.tasks import load_task, subsample
    from layercollapse.model.layers import drop_layers
    from layercollapse.model.loading import load_model
    from layercollapse.readout.lens import layerwise_scores
    from layercollapse.readout.scoring import score
    from layercollapse.measures.phases import Readout, phases_from_readout

    assert main(["diagnose", "--model", str(tiny_folder), "--dtype", "fp32", "--limit", "6",
                 "--n-bootstrap", "50"]) == 0
    out = capsys.readouterr().out.splitlines()
    items = subsample(load_task("arc_easy").items, 6, 0)
    gold = np.array([i.gold for i in items])
    model, tokenizer = load_model(str(tiny_folder), dtype="fp32")
    scores = layerwise_scores(model, tokenizer, items, "letter", task="arc_easy")
    phases = phases_from_readout(Readout(scores, gold, {}), n_resamples=50, seed=0)
    rows = [line.split() for line in out if line.split() and (line.split()[0] == "emb" or line.split()[0].isdigit())]
    assert [row[0] for row in rows] == ["emb"] + [str(layer) for layer in range(phases.n_layers)]
    assert [float(row[1]) for row in rows] == pytest.approx(phases.transition.accuracy, abs=5e-4)
    assert [row[5] for row in rows[1:]] == ["Decisive" if layer in phases.decisive else "Silent"
                                             for layer in range(phases.n_layers)]
    intact = metrics.accuracy(score(model, tokenizer, items, "letter", task="arc_easy"), gold)
    for layer, row in enumerate(rows[1:]):  # each layer's cost = removing it from scratch
        with drop_layers(model, [layer]):
            without = metrics.accuracy(score(model, tokenizer, items, "letter", task="arc_easy"), gold)
        assert float(row[6]) == pytest.approx(without, abs=5e-4)
        assert float(row[7]) == pytest.approx(intact - without, abs=5e-4)
    assert f"Silent Phase:   layers {layer_spans(phases.silent)} ({len(phases.silent)})" in out
    assert not any("safe to prune" in line for line in out)
    assert any(line.startswith("Single-layer costs do not add up") for line in out)


def test_cli_evaluate_with_shots_scores_the_k_shot_prompts(tiny_folder, capsys):
    from layercollapse.data.tasks import fewshot_examples, load_task, subsample
    from layercollapse.model.loading import load_model

    assert main(["evaluate", "--model", str(tiny_folder), "--dtype", "fp32", "--limit", "3", "--shots", "2"]) == 0
    out = capsys.readouterr().out
    items = subsample(load_task("arc_easy").items, 3, 0)
    model, tokenizer = load_model(str(tiny_folder), dtype="fp32")
    shots = fewshot_examples("arc_easy", 2, 0, exclude=items)
    scores = score(model, tokenizer, items, "letter", task="arc_easy", shots=shots, progress=False)
    gold = np.array([item.gold for item in items])
    assert "3 items, letter format, 2 shots" in out.splitlines()[0]
    assert f"mean DM {metrics.mean_decision_margin(scores, gold):.4f}" in out
    zero_shot = score(model, tokenizer, items, "letter", task="arc_easy", progress=False)
    assert not np.allclose(scores, zero_shot)  # the shots are really in the prompt


def test_cli_prune_with_shots_prunes_on_the_k_shot_prompts_and_records_them(tiny_folder, tmp_path, capsys):
    from layercollapse.data.tasks import fewshot_examples, load_task, split_calibration
    from layercollapse.model.loading import load_model

    assert main(["prune", "--model", str(tiny_folder), "--dtype", "fp32", "--limit", "4", "--n-calibration", "2",
                 "--items-seed", "3", "--shots", "2", "--n-remove", "2", "--store", str(tmp_path / "store")]) == 0
    assert "4 evaluation and 2 calibration items, letter format, 2 shots, schedule iterative" in capsys.readouterr().out
    calibration, evaluation = split_calibration(load_task("arc_easy").items, 2, 4, 3)
    shots = fewshot_examples("arc_easy", 2, 3, exclude=(*calibration, *evaluation))
    (stored,) = iter_traces(Store(tmp_path / "store"))
    assert stored.spec["shot_ids"] == [shot.id for shot in shots]
    model, tokenizer = load_model(str(tiny_folder), dtype="fp32")
    expected = prune(model, tokenizer, evaluation, calibration=calibration, n_remove=2, task="arc_easy",
                     shots=shots, progress=False)
    assert stored.removed == expected.removed and np.allclose(stored.scores, expected.scores, atol=1e-5)
    np.testing.assert_allclose(stored.scores[0], score(model, tokenizer, evaluation, "letter", task="arc_easy",
                                                       shots=shots, progress=False), atol=1e-5)


def test_cli_reports_a_bad_model_folder_in_one_line(tmp_path, capsys):
    from layercollapse.cli.main import main

    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", "--model", str(tmp_path), "--task", "arc_easy", "--limit", "2"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2 and len(err) == 1 and err[0].startswith(f"error: Model folder '{tmp_path}'")


def test_cli_refuses_a_file_as_model_in_one_line_before_loading_the_task(tmp_path, capsys, monkeypatch):
    from layercollapse.cli.main import main
    from layercollapse.data import tasks

    monkeypatch.setattr(tasks, "load_task", lambda *args, **kwargs: pytest.fail("the task loaded before --model"))
    notes = tmp_path / "some.txt"
    notes.write_text("not a model")
    for command in (["evaluate"], ["prune", "--store", str(tmp_path / "store")]):
        with pytest.raises(SystemExit) as exit_info:
            main([*command, "--model", str(notes), "--limit", "2"])
        err = capsys.readouterr().err.strip().splitlines()
        assert exit_info.value.code == 2 and len(err) == 1 and err[0].startswith(f"error: Model '{notes}' is a file")



def test_cli_diagnose_says_its_estimated_time_before_the_heavy_work(tiny_folder, capsys, monkeypatch):
    from layercollapse.cli import evaluate as evaluate_module
    from layercollapse.pruning import engine

    class Stopped(Exception):
        pass

    said_before = []

    def heavy(*args, **kwargs):
        said_before.extend(capsys.readouterr().out.splitlines())
        raise Stopped

    monkeypatch.setattr(evaluate_module, "layer_pass_seconds", lambda *args: 0.5)
    monkeypatch.setattr(engine, "single_layer_removals", heavy)
    with pytest.raises(Stopped):
        main(["diagnose", "--model", str(tiny_folder), "--dtype", "fp32", "--limit", "4"])
    # 4 items × 5 layers: 4 × 5·6/2 = 60 decoder-layer passes over one item, 0.5 s each: 30 s
    assert said_before == ["estimated time: about 30 s (4 items × 5·6/2 = 60 decoder-layer passes over one item, at "
                           "500 ms each as timed on 2 item(s) here; a rough guide)"]


def test_the_layer_pass_rate_is_measured_on_the_first_items(tiny_folder):
    from layercollapse.cli.evaluate import RATE_ITEMS, layer_pass_seconds
    from layercollapse.data.tasks import load_task, subsample
    from layercollapse.model.loading import load_model

    model, tokenizer = load_model(str(tiny_folder), dtype="fp32")
    items = subsample(load_task("arc_easy").items, 4, 0)
    assert RATE_ITEMS == 2 and 0 < layer_pass_seconds(model, tokenizer, items, "letter", "arc_easy", ()) < 5


def test_the_transition_column_says_there_was_none_to_prevent_when_the_intact_network_has_none():
    import pandas as pd
    from types import SimpleNamespace

    from layercollapse.cli.evaluate import NO_TRANSITION, cost_rows

    costs = pd.DataFrame({"layer": [0, 1], "phase": ["Silent", "Decisive"], "accuracy": [0.5, 0.25],
                          "accuracy_drop": [0.0, 0.25], "accuracy_drop_low": [-0.1, 0.1],
                          "accuracy_drop_high": [0.1, 0.4], "dm_drop": [0.0, 1.0], "dm_drop_low": [-0.2, 0.5],
                          "dm_drop_high": [0.2, 1.5], "transition_layer": pd.array([pd.NA, 1], dtype="Int64"),
                          "outcome": ["prevented", "delayed"], "needed": [True, True]})
    band = SimpleNamespace(accuracy=[0.25, 0.3, 0.5], low=[0.2, 0.2, 0.4], high=[0.3, 0.4, 0.6])
    dm = np.array([0.0, 0.5, 1.5])
    none = cost_rows(costs, band, dm, intact_has_transition=False)
    assert [row.split()[-1] for row in none] == [NO_TRANSITION, NO_TRANSITION] == ["—", "—"]
    assert not any("prevented" in row or "needs it" in row for row in none)
    some = cost_rows(costs, band, dm, intact_has_transition=True)
    assert some[0].endswith("  prevented  <- the transition needs it")
    assert some[1].endswith("  delayed (layer 1)  <- the transition needs it")
    assert some[1].split()[:7] == ["1", "0.500", "[0.400,", "0.600]", "1.500", "Decisive", "0.250"]
