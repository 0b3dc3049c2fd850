"""The cold-run benchmark (``benchmarks/cold_profile.py``) times every step once, resumes, and compares.

It runs on the golden profile (tiny random models, ``tests/golden.py``): a cold store is filled through the
plan, every computing step is logged once, a second run computes nothing, and the summary compares every
committed golden result with the one computed cold, under the same key.
"""

from __future__ import annotations

import json
import shutil

import pytest
from benchmark_scripts import load_benchmark
from golden import GOLDEN_PROFILE, GOLDEN_STORE, golden_loader
from layercollapse.storage.provenance import split_results
from layercollapse.storage.store import Store, list_results
from layercollapse.study.experiments import Experiments

pytestmark = pytest.mark.slow


def test_a_cold_run_is_timed_per_step_resumes_and_is_compared_with_the_committed_store(tmp_path):
    bench = load_benchmark("cold_profile")
    cold, log = Store(tmp_path / "cold"), tmp_path / "cold" / "steps.jsonl"
    experiments = Experiments(GOLDEN_PROFILE, store=cold, compute=True, progress=False, load_model=golden_loader())
    bench.run_cold(experiments, log)
    steps = [json.loads(line) for line in log.read_text().splitlines()]
    names = [step.name for step in experiments.plan]
    logged = [step["name"] for step in steps]
    assert logged == [name for name in names if name in logged] and len(set(logged)) == len(logged)
    assert logged[0] == names[0] and all(step["seconds"] >= 0 for step in steps)

    bench.run_cold(experiments, log)  # everything stored: nothing is computed, nothing logged
    assert [json.loads(line)["name"] for line in log.read_text().splitlines()] == logged

    committed = Store(tmp_path / "committed")
    shutil.copytree(GOLDEN_STORE, committed.root)
    current, _ = split_results(list_results(committed))
    report = bench.summary(GOLDEN_PROFILE.name, cold, committed, log)
    check = report["comparison"]
    assert check["results"] == len(current) and report["pending"]["results"] == 0
    assert check["not_in_committed_store"] == []  # the cold run computes exactly the committed keys
    assert check["identical"] + len(check["differ"]) == check["results"] and check["values"] > 0
    assert report["measured_hours"] == pytest.approx(sum(step["seconds"] for step in steps) / 3600, abs=1e-3)

    shutil.rmtree(cold.directory("trace"))  # a partly computed cold store: the rest is listed as pending
    partial = bench.summary(GOLDEN_PROFILE.name, cold, committed, log)
    n_traces = int((current["kind"] == "trace").sum())
    assert partial["pending"]["results"] == n_traces and partial["comparison"]["results"] == len(current) - n_traces
    assert {row["kind"] for row in partial["pending"]["rows"]} == {"trace"}


def test_steps_start_from_the_committed_store_and_compute_exactly_their_own_results(tmp_path):
    bench = load_benchmark("cold_profile")
    committed = Store(tmp_path / "committed")
    shutil.copytree(GOLDEN_STORE, committed.root)
    reading = Experiments(GOLDEN_PROFILE, store=committed, compute=False, progress=False, load_model=golden_loader())
    owned = bench.own_results(reading)
    assert list(owned) == [step.name for step in reading.plan]
    every = [result for results in owned.values() for result in results]
    assert len(every) == len(set(every)) == len(split_results(list_results(committed))[0])  # each result owned once
    timed = [name for name, results in owned.items() if any(kind == "trace" for kind, _ in results)][-1:]
    timed += [name for name, results in owned.items() if results and name not in timed][:1]

    with pytest.raises(SystemExit, match="--steps 'no such step' is not a step"):
        bench.seed_cold_store(reading, tmp_path / "unused", ["no such step"])
    cold = tmp_path / "cold"
    bench.seed_cold_store(reading, cold, timed)
    missing = {(kind, key) for name in timed for kind, key in owned[name]}
    assert all((Store(cold).load_key(kind, key) is None) == ((kind, key) in missing) for kind, key in every)

    log = cold / "steps.jsonl"
    computing = Experiments(GOLDEN_PROFILE, store=Store(cold), compute=True, progress=False, load_model=golden_loader())
    bench.run_cold(computing, log, timed)
    assert [json.loads(line)["name"] for line in log.read_text().splitlines()] == timed  # in the order given
    report = bench.summary(GOLDEN_PROFILE.name, Store(cold), committed, log)
    assert report["pending"]["results"] == 0 and report["copied_from_committed"] == len(every) - len(missing)
    assert report["comparison"]["results"] == len(missing) and report["comparison"]["not_in_committed_store"] == []
