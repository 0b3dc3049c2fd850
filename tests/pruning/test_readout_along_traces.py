"""The logit-lens readout recorded along pruning traces equals the readout of each pruned network run from scratch."""

from __future__ import annotations

import layercollapse.pruning.schedules as schedules_module
import numpy as np
import pytest
from layercollapse.pruning.trace import Trace
from layercollapse.pruning.engine import prune
from layercollapse.readout.lens import layerwise_scores
from layercollapse.storage.store import Store

SCHEDULES = {"iterative": {}, "block_influence": {}, "angular_distance": {}, "reverse": {}, "random": {"seed": 2},
             "random_in_range": {"layers": [1, 2, 3], "seed": 1}}


@pytest.fixture(scope="module")
def split(items):
    return items[:5], items[5:]


def rebuilt_readout(model, tokenizer, items, kept, format):
    """The naive reference: the pruned network built with ``keep_layers`` and read by ``layerwise_scores``."""
    return layerwise_scores(model, tokenizer, items, format, layers=kept, task="arc_easy", progress=False)


@pytest.mark.parametrize("format, arch", [("letter", "llama"), ("cloze", "qwen2")])
@pytest.mark.parametrize("schedule", SCHEDULES)
def test_the_readout_at_every_step_equals_the_rebuilt_pruned_network(tiny_model, tokenizer, split, schedule, format,
                                                                     arch):
    model = tiny_model(arch)
    calibration, evaluation = split
    kwargs = dict(calibration=calibration, task="arc_easy", format=format, progress=False, **SCHEDULES[schedule])
    trace = prune(model, tokenizer, evaluation, schedule, readout=True, **kwargs)
    plain = prune(model, tokenizer, evaluation, schedule, **kwargs)
    assert trace.removed == plain.removed  # the readout changes nothing the schedule decides
    np.testing.assert_array_equal(trace.scores, plain.scores)
    assert trace.spec["layer_readout"] == "logit" and "layer_readout" not in plain.spec and not plain.has_readout
    for step in range(trace.n_steps):
        kept = trace.kept_layers(step)
        layers, readout = trace.readout_at(step)
        assert layers == (-1, *kept)  # original indices, embeddings first
        np.testing.assert_allclose(readout, rebuilt_readout(model, tokenizer, evaluation, kept, format), atol=2e-5)
        np.testing.assert_allclose(readout[-1], trace.scores[step], atol=2e-5)  # the last row is the network's output


def test_the_readout_is_the_same_with_and_without_the_prefix_cache(tiny_model, tokenizer, split):
    model = tiny_model("gemma3")
    calibration, evaluation = split
    cached, naive = (prune(model, tokenizer, evaluation, calibration=calibration, task="arc_easy", readout=True,
                           cache=cache, progress=False) for cache in (True, False))
    assert cached.removed == naive.removed
    np.testing.assert_allclose(cached.readout, naive.readout, atol=2e-5)
    np.testing.assert_array_equal(cached.readout_layer, naive.readout_layer)


def test_readout_traces_round_trip_and_leave_the_keys_of_plain_traces_alone(tiny_model, tokenizer, split, tmp_path):
    model = tiny_model("llama")
    store = Store(tmp_path)
    plain = prune(model, tokenizer, split[1], "reverse", task="arc_easy", store=store, progress=False)
    traced = prune(model, tokenizer, split[1], "reverse", task="arc_easy", store=store, readout=True, progress=False)
    assert plain.key != traced.key and len(list((tmp_path / "trace").glob("*.json"))) == 2
    assert Trace.load(store, plain.spec).readout is None
    loaded = Trace.load(store, traced.spec)
    np.testing.assert_array_equal(loaded.readout, traced.readout)
    np.testing.assert_array_equal(loaded.readout_step, np.repeat(np.arange(5), [6, 5, 4, 3, 2]))
    assert loaded.readout_layer[:6].tolist() == [-1, 0, 1, 2, 3, 4] and loaded.readout_layer[-2:].tolist() == [-1, 0]
    with pytest.raises(ValueError, match="readout=True"):
        plain.readout_at(0)


def test_a_killed_readout_trace_resumes_to_the_uninterrupted_one(tiny_model, tokenizer, split, tmp_path, monkeypatch):
    model = tiny_model("qwen2")
    calibration, evaluation = split
    kwargs = dict(calibration=calibration, task="arc_easy", readout=True, progress=False)
    whole = prune(model, tokenizer, evaluation, **kwargs)
    planner = schedules_module.greedy_planner

    def dies_at_step_3(*args, **kw):
        plan = planner(*args, **kw)

        def next_removal(step, kept):
            if step == 3:
                raise KeyboardInterrupt
            return plan(step, kept)
        return next_removal

    monkeypatch.setattr(schedules_module, "greedy_planner", dies_at_step_3)
    store = Store(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        prune(model, tokenizer, evaluation, store=store, **kwargs)
    assert len(list((tmp_path / "trace").glob("*.partial/step_*.json"))) == 3
    monkeypatch.setattr(schedules_module, "greedy_planner", planner)
    resumed = prune(model, tokenizer, evaluation, store=store, **kwargs)
    assert resumed.removed == whole.removed
    np.testing.assert_allclose(resumed.readout, whole.readout, atol=1e-6)
    np.testing.assert_array_equal(resumed.readout_step, whole.readout_step)
