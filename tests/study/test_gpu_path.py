"""The GPU path on CPU: memory planner fallback, the GPU benchmark's --tiny mode, device_map hooks, multi-worker reproduce.

Everything runs on tiny random models (or none). A CUDA-only check at the end runs where a
GPU is present.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import store_content
import torch
from benchmark_scripts import load_benchmark
from layercollapse.model.layers import drop_layers
from layercollapse.pruning import engine as pruning
from layercollapse.pruning import schedules
from layercollapse.pruning.prefix import PrefixRunner, cache_bytes
from layercollapse.pruning.encoding import encode_items
from layercollapse.pruning.engine import prune
from layercollapse.readout.lens import layerwise_scores
from layercollapse.readout.scoring import score
from layercollapse.storage.store import Store

ROOT = Path(__file__).resolve().parents[2]
GPU_BENCH = ROOT / "benchmarks" / "gpu_bench.py"


# ------------------------------------------------------------ memory planner fallback


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: on a small, busy CI machine two threads per process oversubscribe the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def split(items):
    return items[:4], items[4:8]


def test_memory_planner_falls_back_when_the_budget_is_small(tiny_model, tokenizer, split, monkeypatch):
    model = tiny_model("llama")
    calibration, evaluation = split
    sets = {"calibration": encode_items(model, tokenizer, calibration, "letter", "arc_easy"),
            "evaluation": encode_items(model, tokenizer, evaluation, "letter", "arc_easy")}
    size = {name: cache_bytes(5, encoded.n_tokens, 64, 4) for name, encoded in sets.items()}
    cases = [(1, {"calibration": False, "evaluation": False}),
             (size["calibration"], {"calibration": True, "evaluation": False}),
             (size["calibration"] + size["evaluation"], {"calibration": True, "evaluation": True})]
    for budget, expected in cases:
        monkeypatch.setattr(pruning, "memory_budget", lambda device, fraction=0.5, budget=budget: budget)
        assert pruning._use_cache(model, "auto", sets) == expected


def test_pruning_under_any_budget_equals_the_naive_path(tiny_model, tokenizer, split, monkeypatch):
    model = tiny_model("llama")
    calibration, evaluation = split
    runners: list[PrefixRunner] = []

    class Recording(PrefixRunner):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            runners.append(self)

    monkeypatch.setattr(pruning, "PrefixRunner", Recording)  # the evaluation runner (engine)
    monkeypatch.setattr(schedules, "PrefixRunner", Recording)  # the greedy planner's calibration runner
    run = lambda cache: prune(model, tokenizer, evaluation, calibration=calibration, n_remove=2,  # noqa: E731
                              task="arc_easy", cache=cache, progress=False)
    naive = run(False)
    naive_runs = [runner.n_layer_runs for runner in runners]
    for budget, cached in ((1, False), (10**12, True)):  # nothing fits / everything fits
        monkeypatch.setattr(pruning, "memory_budget", lambda device, fraction=0.5, budget=budget: budget)
        runners.clear()
        trace = run("auto")
        assert [runner.use_cache for runner in runners] == [cached, cached]  # evaluation, calibration
        assert trace.removed == naive.removed
        np.testing.assert_allclose(trace.scores, naive.scores, atol=1e-5)
        np.testing.assert_allclose(trace.criterion, naive.criterion, atol=1e-6)
        layer_runs = [runner.n_layer_runs for runner in runners]
        assert (layer_runs[0] < naive_runs[0]) if cached else (layer_runs == naive_runs)


# ------------------------------------------------------------------ gpu_bench --tiny


@pytest.mark.slow
def test_gpu_bench_tiny_runs_and_writes_its_json(tmp_path):
    out = tmp_path / "gpu_bench.json"
    start = time.perf_counter()
    completed = subprocess.run([sys.executable, str(GPU_BENCH), "--tiny", "--out", str(out)], capture_output=True,
                               text=True, timeout=120, cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(out.read_text())
    for key in ("benchmark", "device", "device_name", "tiny", "dtype", "model", "matmul", "scoring", "pruning_step",
                "sweep_extrapolation", "goals", "meets_goals"):
        assert key in result, key
    assert result["tiny"] is True and result["device"] == "cpu" and result["meets_goals"] is None
    assert result["model"]["shape"]["num_hidden_layers"] == 4 and result["model"]["attn_implementation"] == "sdpa"
    matmul = result["matmul"]
    assert matmul["tflops"] == max(matmul["tflops_per_size"].values()) == matmul["tflops_per_size"][str(matmul["best_size"])]
    scoring = result["scoring"]
    assert scoring["n_prompts"] == 16 and scoring["tokens_per_s"] > 0 and scoring["finite_scores"]
    assert scoring["fraction_of_matmul"] == pytest.approx(scoring["model_tflops_per_s"] / matmul["tflops"], rel=1e-12)
    step = result["pruning_step"]
    assert step["n_candidates"] == 4 and step["same_choice"] and step["criterion_difference"] < 1e-5
    assert step["cached"]["layer_runs"] < step["naive"]["layer_runs"]
    sweep = result["sweep_extrapolation"]
    assert sweep["n_steps"] == 3 and sweep["cached"]["total_s"] > 0 and set(sweep["cache_plan"]) == {"calibration", "evaluation"}
    print(f"gpu_bench --tiny: {time.perf_counter() - start:.1f} s")


def test_sweep_cost_model_counts_layer_runs():
    bench = load_benchmark("gpu_bench")
    n = 32
    # naive calibration: step 0 = 32 layers, then sum_n n(n-1) layer runs; no per-run cost
    assert bench.sweep_seconds(0.0, 1.0, n, cache=False, evaluation=False) == n + sum(k * (k - 1) for k in range(2, n + 1))
    cached = bench.sweep_seconds(0.0, 1.0, n, cache=True, evaluation=False)
    assert cached < 0.6 * bench.sweep_seconds(0.0, 1.0, n, cache=False, evaluation=False)
    step = {"naive": {"step_s": 32 * 1.0 + 32 * 31 * 0.1}, "cached": {"step_s": 32 * 1.0 + 32 * 31 / 2 * 0.1}}
    per_run, per_layer = bench.run_cost(step, n)
    assert per_run == pytest.approx(1.0) and per_layer == pytest.approx(0.1)


# ------------------------------------------------------------------------- device_map


def test_dispatched_model_equals_the_plain_one(tokenizer, items):
    from accelerate import dispatch_model
    from conftest import build_tiny_model

    reference = build_tiny_model("llama", n_layers=4, seed=3)
    model = build_tiny_model("llama", n_layers=4, seed=3)
    device_map = {"model.embed_tokens": "cpu", **{f"model.layers.{i}": "cpu" for i in range(4)},
                  "model.norm": "cpu", "model.rotary_emb": "cpu", "lm_head": "cpu"}
    model = dispatch_model(model, device_map=device_map, force_hooks=True)
    assert hasattr(model.model.layers[0], "_hf_hook") and hasattr(model.lm_head, "_hf_hook")
    evaluation = items[:6]
    same = lambda fn: np.testing.assert_allclose(fn(model), fn(reference), atol=1e-6)  # noqa: E731
    same(lambda m: score(m, tokenizer, evaluation, "letter", task="arc_easy", progress=False))
    same(lambda m: score(m, tokenizer, evaluation, "cloze", task="arc_easy", progress=False))
    same(lambda m: layerwise_scores(m, tokenizer, evaluation, "letter", task="arc_easy", progress=False))

    def dropped(m):
        batch = tokenizer(["Question: Which gas do plants take in?\nAnswer:"], return_tensors="pt")
        with torch.inference_mode(), drop_layers(m, [1, 2]):
            return m(**batch).logits[:, -1].numpy()

    same(dropped)
    same(lambda m: score(m, tokenizer, evaluation, "letter", layers=[0, 3], task="arc_easy", progress=False))
    same(lambda m: layerwise_scores(m, tokenizer, evaluation, "letter", layers=[0, 3], progress=False))

    def from_prefix(m):  # the prefix cache feeds remembered states back as inputs_embeds
        runner = PrefixRunner(m, encode_items(m, tokenizer, evaluation, "letter", "arc_easy"))
        runner.remember(range(4))
        return np.stack([runner.run([layer for layer in range(4) if layer != removed]) for removed in range(4)])

    same(from_prefix)
    assert hasattr(model.model.layers[0], "_hf_hook")  # views restore the hooked layers


# ------------------------------------------------------------------- distributed reproduce


def fake_steps(experiments) -> list:
    """A small plan: one readout that the traces read, four traces, and a step that reads every trace."""
    store = experiments.store

    def readout():
        store.save("readout", {"fake": "readout"}, arrays={"scores": np.arange(12.0).reshape(3, 4)})

    def trace(index):
        stored = store.load("readout", {"fake": "readout"})
        if stored is None:
            raise RuntimeError("the readout must be stored before the traces run")
        store.save("trace", {"fake": "trace", "index": index}, pd.DataFrame({"step": np.arange(index + 1)}),
                   {"scores": stored.arrays["scores"] * index})

    def similarity():
        if any(store.load("trace", {"fake": "trace", "index": i}) is None for i in range(4)):
            raise RuntimeError("the traces must be stored before the similarity step runs")
        store.save("similarity", {"fake": "similarity"}, pd.DataFrame({"n": [4]}))

    from layercollapse.study.plan import PlanStep

    first = PlanStep("readout fake model", readout)
    traces = [PlanStep(f"trace fake {i}", lambda i=i: trace(i), needs=(first,)) for i in range(4)]
    return [first, *traces, PlanStep("similarity along iterative", similarity, needs=tuple(traces))]


@pytest.mark.parametrize("profile", ["test", "default"])
def test_plan_waves_run_every_step_after_the_steps_it_needs(profile):
    from layercollapse.study.distributed import plan_waves
    from layercollapse.study.experiments import Experiments

    steps = Experiments(profile, compute=False).plan
    names = [step.name for step in steps]
    waves = plan_waves(steps)
    assert sorted(index for wave in waves for index in wave) == list(range(len(steps)))
    wave_of = {names[index]: number for number, wave in enumerate(waves) for index in wave}
    for step in steps:
        assert all(wave_of[needed.name] < wave_of[step.name] for needed in step.needs), step.name
    # readouts first; then what reads them (the phase-targeted traces among them); then the settings' studies, which
    # read the main model's phase-targeted traces
    assert not any(steps[index].needs for index in waves[0]) and len(waves) == 3
    assert {"noise sweep", "similarity along iterative", "fine-tuning recovery"} <= {names[i] for i in waves[1]}
    assert {names[i] for i in waves[2]} == {name for name in names if name.startswith("study ")}
    assert plan_waves(steps, [names.index("noise sweep")]) == [[names.index("noise sweep")]]  # its need is not run


def test_two_debug_workers_fill_the_store_like_one(tmp_path, monkeypatch):
    from layercollapse.study.distributed import run_plan_distributed
    from layercollapse.study.experiments import Experiments

    monkeypatch.setattr(Experiments, "plan", property(fake_steps))
    logs: list[str] = []
    for workers in (1, 2):
        outcomes = run_plan_distributed("test", "debug", workers, store=Store(tmp_path / f"store{workers}"),
                                        folder=tmp_path / "submitit", poll_s=0.01, log=logs.append)
        assert [outcome.ok for outcome in outcomes] == [True] * 6, logs
        assert outcomes[0].name == "readout fake model" and outcomes[-1].name == "similarity along iterative"
    one, two = store_content(tmp_path / "store1"), store_content(tmp_path / "store2")
    assert len(one) == 6 and one == two
    # a rerun finds everything stored; --only runs a subset
    outcomes = run_plan_distributed("test", "debug", 2, store=Store(tmp_path / "store2"), only="trace fake 1",
                                    folder=tmp_path / "submitit", poll_s=0.01, log=logs.append)
    assert [outcome.name for outcome in outcomes] == ["trace fake 1"] and store_content(tmp_path / "store2") == two


def test_a_failed_wave_stops_the_run(tmp_path, monkeypatch):
    from layercollapse.study.distributed import run_plan_distributed
    from layercollapse.study.experiments import Experiments

    def broken(experiments):
        steps = fake_steps(experiments)
        return [steps[0]._replace(run=lambda: 1 / 0)] + steps[1:]

    monkeypatch.setattr(Experiments, "plan", property(broken))
    logs: list[str] = []
    outcomes = run_plan_distributed("test", "debug", 2, store=Store(tmp_path / "store"), folder=tmp_path / "sub",
                                    poll_s=0.01, log=logs.append)
    assert [(outcome.name, outcome.ok) for outcome in outcomes] == [("readout fake model", False)]
    assert "ZeroDivisionError" in outcomes[0].error and any("stopping" in line for line in logs)


FAKE_MODULE = '''
from dataclasses import dataclass
from layercollapse.storage.store import Store
import test_gpu_path_fake_steps as steps

@dataclass(frozen=True)
class FakeProfile:
    name: str = "fake"

class FakeExperiments:
    def __init__(self, profile=None, store=None, compute=True, progress=True):
        self.profile = profile if isinstance(profile, FakeProfile) else FakeProfile()
        self.store = store or Store()

    @property
    def plan(self):
        return steps.fake_steps(self)
'''


@pytest.mark.slow
@pytest.mark.distributed
def test_two_local_workers_fill_the_store_like_one(tmp_path, monkeypatch):
    """Real subprocesses through submitit's LocalExecutor, two at a time, writing one shared store."""
    import submitit  # noqa: F401 - the distributed extra (the marker skips without it)
    from layercollapse.study.distributed import run_plan_distributed

    (tmp_path / "fake_experiments.py").write_text(FAKE_MODULE)
    (tmp_path / "test_gpu_path_fake_steps.py").write_text(
        "import numpy as np\nimport pandas as pd\n" + textwrap.dedent(
            __import__("inspect").getsource(fake_steps)))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    from fake_experiments import FakeExperiments

    logs: list[str] = []
    outcomes = run_plan_distributed(None, "local", 2, store=Store(tmp_path / "local"), folder=tmp_path / "submitit",
                                    experiments_class=FakeExperiments, poll_s=0.1, time_min=5, log=logs.append)
    assert [outcome.ok for outcome in outcomes] == [True] * 6, "\n".join(logs)
    assert len({outcome.host for outcome in outcomes}) == 1
    run_plan_distributed(None, "debug", 1, store=Store(tmp_path / "serial"), folder=tmp_path / "submitit",
                         experiments_class=FakeExperiments, poll_s=0.01, log=logs.append)
    assert store_content(tmp_path / "local") == store_content(tmp_path / "serial")


def _write_results(root: str, keys: list[int], start) -> None:
    """Worker of the concurrency test: save results for ``keys`` (same content in every process)."""
    store = Store(root)
    start.wait()
    for key in keys:
        store.save("shared", {"key": key}, pd.DataFrame({"x": np.arange(key % 7)}), {"v": np.full((50, 40), float(key))})


def test_concurrent_processes_write_one_store_safely(tmp_path):
    context = multiprocessing.get_context("fork")
    start = context.Barrier(2)
    keys = list(range(24))
    orders = [keys, keys[::-1]]  # both processes write every key, in opposite orders, at once
    processes = [context.Process(target=_write_results, args=(str(tmp_path), order, start)) for order in orders]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
    assert [process.exitcode for process in processes] == [0, 0]
    store = Store(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a CorruptResultWarning fails the test
        for key in keys:
            result = store.load("shared", {"key": key})
            assert result is not None and len(result.table) == key % 7
            np.testing.assert_array_equal(result.arrays["v"], np.full((50, 40), float(key)))
    assert not list((tmp_path / "shared").glob("*.tmp")) and not list((tmp_path / "shared").glob(".*.tmp"))


@pytest.mark.distributed
def test_slurm_executor_writes_an_array_script(tmp_path, monkeypatch):
    import submitit  # noqa: F401 - the distributed extra (the marker skips without it)
    from layercollapse.study.distributed import make_executor

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    executor = make_executor("slurm", tmp_path / "sub", 4, time_min=600, slurm_partition="gpu", slurm_gpus=1,
                             slurm_cpus=12, slurm_mem_gb=120, slurm_setup=["source .venv/bin/activate"])
    executor.parameters["map_count"] = 9
    text = executor._make_submission_file_text("python -u -m submitit.core._submit x", "uid")
    for line in ("#SBATCH --partition=gpu", "#SBATCH --gpus-per-node=1", "#SBATCH --cpus-per-task=12",
                 "#SBATCH --mem=120GB", "#SBATCH --time=600", "#SBATCH --array=0-8%4", "source .venv/bin/activate"):
        assert line in text, line
    with pytest.raises(ValueError, match="Unknown executor"):
        make_executor("ray", tmp_path, 1)


def test_cli_arguments(tmp_path, monkeypatch):
    import argparse

    from layercollapse.study.distributed import (
        add_distributed_arguments,
        maybe_run_distributed,
    )
    from layercollapse.study.experiments import Experiments

    parser = argparse.ArgumentParser()
    parser.add_argument("--profile", default=None)
    parser.add_argument("--only", default=None)
    parser.add_argument("--list", action="store_true")
    add_distributed_arguments(parser)
    assert maybe_run_distributed(parser.parse_args(["--profile", "test"])) is None
    assert maybe_run_distributed(parser.parse_args(["--profile", "test", "--workers", "2", "--list"])) is None
    monkeypatch.setattr(Experiments, "plan", property(fake_steps))
    monkeypatch.setenv("LAYERCOLLAPSE_STORE", str(tmp_path / "store"))
    args = parser.parse_args(["--profile", "test", "--workers", "2", "--executor", "debug",
                              "--submitit-folder", str(tmp_path / "sub")])
    assert maybe_run_distributed(args) == 0
    assert len(store_content(tmp_path / "store")) == 6
