"""Work a trace never does twice: a longer trace continues its stored shorter version, and traces on the same model
and items share the intact network's pass (step 0). Both must give exactly the traces computed from scratch."""

from __future__ import annotations

import json

import numpy as np
import pytest
from layercollapse.pruning.prefix import IntactPrefixes, PrefixRunner
from layercollapse.pruning.trace import Trace
from layercollapse.pruning.engine import prune, prune_seeds
from layercollapse.storage.store import Store


def assert_same_trace(got: Trace, want: Trace) -> None:
    assert got.spec == want.spec and got.removed == want.removed
    np.testing.assert_array_equal(got.kept, want.kept)
    np.testing.assert_array_equal(got.scores, want.scores)  # bit for bit
    np.testing.assert_array_equal(got.criterion, want.criterion)
    if want.has_readout:
        np.testing.assert_array_equal(got.readout, want.readout)
        np.testing.assert_array_equal(got.readout_layer, want.readout_layer)
        np.testing.assert_array_equal(got.readout_step, want.readout_step)


@pytest.mark.parametrize("schedule, options", [("random_in_range", {"layers": [0, 1, 2, 3], "seed": 2}),
                                               ("iterative", {"criterion": "dm"})])
def test_a_longer_trace_continues_its_stored_shorter_version(tiny_model, tokenizer, items, tmp_path, schedule, options):
    model = tiny_model("llama")
    calibration, evaluation = items[:4], items[4:]
    common = dict(task="arc_easy", readout=True, progress=False, **options)
    if schedule == "iterative":
        common["calibration"] = calibration
    store = Store(tmp_path)
    short = prune(model, tokenizer, evaluation, schedule, n_remove=2, store=store, **common)
    runner_runs = []
    original = PrefixRunner._run

    def counting(self, kept, *args, **kwargs):
        if kept != self.network:  # a run of the remembered network itself computes nothing
            runner_runs.append(kept)
        return original(self, kept, *args, **kwargs)

    PrefixRunner._run = counting
    try:
        longer = prune(model, tokenizer, evaluation, schedule, n_remove=3, store=store, **common)
    finally:
        PrefixRunner._run = original
    scratch = prune(model, tokenizer, evaluation, schedule, n_remove=3, **common)
    assert_same_trace(longer, scratch)
    assert_same_trace(Trace(short.spec, longer.removed[:3], longer.kept[:3], longer.scores[:3], longer.criterion[:3],
                            longer.gold, short.key, *(_first_steps(longer, 3))), short)
    sidecar = json.loads((store.directory("trace") / f"{longer.key}.json").read_text())
    assert sidecar["provenance"]["extends"] == short.key
    if schedule == "random_in_range":  # only the new step's evaluation ran (and the intact prefix it starts from)
        evaluated = [kept for kept in runner_runs if len(kept) < 5]
        assert evaluated == [longer.kept_layers(3)]


def _first_steps(trace: Trace, n_steps: int):
    rows = trace.readout_step < n_steps
    return trace.readout[rows], trace.readout_step[rows], trace.readout_layer[rows]


def test_traces_on_the_same_items_share_the_intact_pass(tiny_model, tokenizer, items):
    model = tiny_model("qwen2")
    evaluation = items[2:]
    intact = IntactPrefixes()
    runs = []
    original = PrefixRunner._run

    def counting(self, kept, *args, **kwargs):
        if kept != self.network:  # a run of the remembered network itself computes nothing
            runs.append(len(kept))
        return original(self, kept, *args, **kwargs)

    common = dict(task="arc_easy", readout=True, progress=False)
    PrefixRunner._run = counting
    try:
        shared = [prune_seeds(model, tokenizer, evaluation, "random", [seed], intact=intact, **common)[0]
                  for seed in (0, 1)]
        reverse = prune(model, tokenizer, evaluation, "reverse", intact=intact, **common)
    finally:
        PrefixRunner._run = original
    assert runs.count(5) == 1  # the intact network ran once for three traces
    for trace, (schedule, seed) in zip((*shared, reverse), (("random", 0), ("random", 1), ("reverse", 0))):
        assert_same_trace(trace, prune(model, tokenizer, evaluation, schedule, seed=seed, **common))
    # another item set, or the same items without the readout, is another intact pass
    prune(model, tokenizer, evaluation[1:], "reverse", intact=intact, **common)
    assert len(intact.entries) == 1  # capacity 1: the most recent item set only
