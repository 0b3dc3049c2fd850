"""Pruning schedules against their definitions and naive references, on tiny random models."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import layercollapse.pruning.engine as engine_module
import numpy as np
import pytest
import torch
from layercollapse.data.tasks import fewshot_examples
from layercollapse.measures import metrics
from layercollapse.pruning.prefix import PrefixRunner, cache_bytes, memory_budget, plan_prefix_cache
from layercollapse.pruning.trace import Trace, iter_traces
from layercollapse.pruning.statistics import angular_distances, block_influence
from layercollapse.pruning.schedules import choose_removal, criterion_function
from layercollapse.pruning.encoding import encode_items, encode_passages
from layercollapse.pruning.engine import prune, prune_seeds
from layercollapse.readout.lens import layerwise_scores
from layercollapse.readout.scoring import score
from layercollapse.storage import provenance
from layercollapse.storage.store import Store

TESTS = Path(__file__).resolve().parents[1]  # tests/, where conftest.py lives
PASSAGES = ["The sun rises in the east and sets in the west.",
            "Water boils at one hundred degrees Celsius at sea level, and freezes at zero.",
            "A plant makes its food from light."]


@pytest.fixture(scope="module")
def split(items):
    """(calibration, evaluation): disjoint halves of the shared items."""
    return items[:5], items[5:]


def scores_of(model, tokenizer, items, kept, format="letter"):
    """The naive reference: the whole pruned network, through ``scoring.score``."""
    return score(model, tokenizer, items, format, layers=kept, task="arc_easy", progress=False)


# ------------------------------------------------------------------- cache planning


def test_plan_prefix_cache_keeps_what_fits_in_priority_order():
    size = cache_bytes(n_layers=30, n_tokens=1000, d_model=64, bytes_per_value=4)
    assert size == 30 * 1000 * 64 * 4
    assert plan_prefix_cache({"calibration": 1000, "evaluation": 1000}, 30, 64, 4, budget=2 * size) == \
        {"calibration": True, "evaluation": True}
    assert plan_prefix_cache({"calibration": 1000, "evaluation": 3000}, 30, 64, 4, budget=2 * size) == \
        {"calibration": True, "evaluation": False}
    assert plan_prefix_cache({"calibration": 3000, "evaluation": 1000}, 30, 64, 4, budget=2 * size) == \
        {"calibration": False, "evaluation": True}
    assert plan_prefix_cache({"calibration": 1000}, 30, 64, 4, budget=size - 1) == {"calibration": False}


def test_memory_budget_is_the_stated_fraction_of_available_memory(monkeypatch):
    import collections
    import sys
    import types

    fake = types.SimpleNamespace(virtual_memory=lambda: collections.namedtuple("vm", "available")(8_000_000_000))
    monkeypatch.setitem(sys.modules, "psutil", fake)
    assert memory_budget("cpu", fraction=0.25) == 2_000_000_000
    monkeypatch.setitem(sys.modules, "psutil", None)  # not installed: sysconf's available pages
    pages = {"SC_AVPHYS_PAGES": 1000, "SC_PAGE_SIZE": 4096}
    monkeypatch.setattr("os.sysconf", pages.__getitem__)
    assert memory_budget("cpu", fraction=0.5) == 2_048_000


# ------------------------------------------------------------- cached == naive path


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gemma3"])
def test_cached_subnetworks_equal_the_whole_pruned_network(tiny_model, tokenizer, split, arch):
    model = tiny_model(arch)
    calibration = split[0]
    runner = PrefixRunner(model, encode_items(model, tokenizer, calibration, "letter", "arc_easy"))
    intact = runner.run(range(5), remember=True)
    np.testing.assert_allclose(intact, scores_of(model, tokenizer, calibration, None), atol=1e-5)
    for layer in range(5):  # each candidate starts from the remembered input of `layer`
        kept = [k for k in range(5) if k != layer]
        np.testing.assert_allclose(runner.run(kept), scores_of(model, tokenizer, calibration, kept), atol=1e-5)
    runner.remember([0, 1, 3, 4])  # a pruned network's prefix, then a subnetwork of it
    for kept in ([0, 3, 4], [1, 3, 4], [0, 1, 3], [0]):
        np.testing.assert_allclose(runner.run(kept), scores_of(model, tokenizer, calibration, kept), atol=1e-5)
    assert runner.n_layer_runs < 5 + 5 * 4 + 4 * 3  # fewer layers run than from the embeddings each time


def test_benchmark_textbook_loop_equals_prune(tiny_model, tokenizer, split):
    """benchmarks/bench_pruning.py's naive arm (full forward, full logits per candidate) runs the same greedy
    sweep as ``prune``: same removals, same evaluation scores, so its wall-time ratio compares like with like."""
    import runpy

    bench = runpy.run_path(str(Path(__file__).resolve().parents[2] / "benchmarks" / "bench_pruning.py"),
                           run_name="bench_pruning")
    model = tiny_model("llama")
    calibration, evaluation = split
    naive = bench["naive_sweep"](model, tokenizer, calibration, evaluation, 3, 8192)
    cached = prune(model, tokenizer, evaluation, calibration=calibration, task="arc_easy", n_remove=3, cache=True,
                   progress=False)
    assert naive["removal_order"] == cached.removal_order()
    np.testing.assert_allclose(naive["scores"], cached.scores, atol=1e-5)


def test_cached_cloze_scores_equal_the_whole_pruned_network(tiny_model, tokenizer, split):
    model = tiny_model("qwen2")
    runner = PrefixRunner(model, encode_items(model, tokenizer, split[0], "cloze", "arc_easy"))
    runner.remember(range(5))
    np.testing.assert_allclose(runner.run([0, 1, 3, 4]), scores_of(model, tokenizer, split[0], [0, 1, 3, 4], "cloze"),
                               atol=1e-4)


def test_iterative_cached_trace_equals_naive_trace_and_the_greedy_definition(tiny_model, tokenizer, split):
    model = tiny_model("llama")
    calibration, evaluation = split
    cached = prune(model, tokenizer, evaluation, calibration=calibration, task="arc_easy", cache=True, progress=False)
    naive = prune(model, tokenizer, evaluation, calibration=calibration, task="arc_easy", cache=False, progress=False)
    assert cached.removed == naive.removed
    np.testing.assert_allclose(cached.scores, naive.scores, atol=1e-5)
    assert cached.scores.shape == (5, len(evaluation), 5) and cached.scores.dtype == np.float32
    assert sorted(cached.removal_order()) == sorted(set(range(5)) - set(cached.kept_layers(4)))
    gold = np.array([item.gold for item in calibration])
    kept = list(range(5))
    for step in range(1, 5):  # the definition: remove the layer whose removal keeps calibration DM highest
        dm = [metrics.mean_decision_margin(scores_of(model, tokenizer, calibration, [k for k in kept if k != c]), gold)
              for c in kept]
        assert cached.removed[step] == (kept[int(np.argmax(dm))],)
        assert cached.criterion[step] == pytest.approx(max(dm), abs=1e-6)
        kept.remove(kept[int(np.argmax(dm))])
        np.testing.assert_allclose(cached.scores[step], scores_of(model, tokenizer, evaluation, kept), atol=1e-5)
    np.testing.assert_array_equal(cached.fraction_removed, np.arange(5) / 5)


def test_auto_cache_falls_back_to_recomputing_when_over_budget(tiny_model, tokenizer, split, monkeypatch):
    model = tiny_model("qwen2")
    calibration, evaluation = split
    cached = prune(model, tokenizer, evaluation, calibration=calibration, n_remove=2, cache=True, progress=False)
    monkeypatch.setattr("layercollapse.pruning.engine.memory_budget", lambda device: 0)
    flags, init = [], PrefixRunner.__init__
    monkeypatch.setattr(PrefixRunner, "__init__", lambda self, *args: flags.append(args[-1]) or init(self, *args))
    fallback = prune(model, tokenizer, evaluation, calibration=calibration, n_remove=2, cache="auto", progress=False)
    assert flags == [False, False]  # calibration and evaluation runners both recompute
    assert fallback.removed == cached.removed
    np.testing.assert_allclose(fallback.scores, cached.scores, atol=1e-5)


def test_decisive_first_removes_only_the_given_layers_until_they_are_gone_then_greedily(tiny_model, tokenizer, split):
    """decisive_first = the greedy definition restricted to ``layers`` while any is kept, then over all layers."""
    model = tiny_model("llama")
    calibration, evaluation = split
    first = [2, 3, 4]
    trace = prune(model, tokenizer, evaluation, "decisive_first", calibration=calibration, layers=first,
                  task="arc_easy", progress=False)
    assert sorted(trace.removal_order()[:3]) == first and trace.spec["layers"] == first
    assert trace.spec["criterion"] == "dm" and trace.n_steps == 5
    gold = np.array([item.gold for item in calibration])
    kept = list(range(5))
    for step in range(1, 5):
        candidates = [c for c in kept if c in first] or kept
        dm = [metrics.mean_decision_margin(scores_of(model, tokenizer, calibration, [k for k in kept if k != c]), gold)
              for c in candidates]
        assert trace.removed[step] == (candidates[int(np.argmax(dm))],)
        assert trace.criterion[step] == pytest.approx(max(dm), abs=1e-6)
        kept.remove(candidates[int(np.argmax(dm))])
        np.testing.assert_allclose(trace.scores[step], scores_of(model, tokenizer, evaluation, kept), atol=1e-5)
    # Every layer a priority: the plain Iterative Pruning order.
    everything = prune(model, tokenizer, evaluation, "decisive_first", calibration=calibration, layers=range(5),
                       task="arc_easy", progress=False)
    plain = prune(model, tokenizer, evaluation, calibration=calibration, task="arc_easy", progress=False)
    assert everything.removed == plain.removed
    with pytest.raises(ValueError, match="needs layers"):
        prune(model, tokenizer, evaluation, "decisive_first", calibration=calibration, progress=False)


def test_ties_go_to_the_lowest_original_layer():
    assert choose_removal([0.5, 0.7, 0.7, 0.1], sign=1) == 1
    assert choose_removal([2.0, 1.0, 1.0, 3.0], sign=-1) == 1


def test_lm_loss_criterion_is_the_mean_next_token_nll(tiny_model, tokenizer, split):
    model = tiny_model("llama")
    encoded = encode_passages(model, tokenizer, PASSAGES)
    loss = criterion_function("lm_loss", encoded, None)(PrefixRunner(model, encoded).run(range(5)))
    total, n_tokens = 0.0, 0
    with torch.inference_mode():
        for text in PASSAGES:
            ids = tokenizer(text, return_tensors="pt").input_ids
            total += model(input_ids=ids, labels=ids).loss.item() * (ids.shape[1] - 1)
            n_tokens += ids.shape[1] - 1
    assert loss == pytest.approx(total / n_tokens, rel=1e-5)
    trace = prune(model, tokenizer, split[1], calibration=PASSAGES, criterion="lm_loss", n_remove=2, progress=False)
    assert trace.n_steps == 3 and trace.criterion[0] == pytest.approx(loss, rel=1e-5)


# ------------------------------------------------------------------ other schedules


def test_reverse_pruning_equals_the_logit_lens_readout(tiny_model, tokenizer, split):
    model = tiny_model("gemma3")
    evaluation = split[1]
    trace = prune(model, tokenizer, evaluation, "reverse", task="arc_easy", progress=False)
    readout = layerwise_scores(model, tokenizer, evaluation, "letter", task="arc_easy", progress=False)
    assert trace.removal_order() == [4, 3, 2, 1]
    for step in range(5):  # layers l+1..4 removed (l = 4 - step) == readout after layer l, index l + 1
        np.testing.assert_allclose(trace.scores[step], readout[5 - step], atol=1e-4)


def test_random_orders_are_seeded_and_range_removals_nested(tiny_model, tokenizer, split):
    model = tiny_model("qwen2")
    evaluation = split[1]
    first = prune(model, tokenizer, evaluation, "random", seed=3, progress=False)
    again = prune(model, tokenizer, evaluation, "random", seed=3, progress=False)
    assert first.removal_order() == again.removal_order() == list(np.random.default_rng(3).permutation(5)[:4])
    orders = {tuple(prune(model, tokenizer, evaluation, "random", seed=seed, n_remove=4, progress=False)
                    .removal_order()) for seed in range(4)}
    assert len(orders) > 1
    inside = prune(model, tokenizer, evaluation, "random_in_range", layers=[1, 2, 3], seed=0, progress=False)
    assert inside.n_steps == 4 and sorted(inside.removal_order()) == [1, 2, 3]
    assert (inside.kept[1:] <= inside.kept[:-1]).all() and inside.kept[:, [0, 4]].all()  # nested, inside the range
    for step in range(4):
        np.testing.assert_allclose(inside.scores[step], scores_of(model, tokenizer, evaluation,
                                                                   inside.kept_layers(step)), atol=1e-5)


def test_seeds_pruned_together_equal_separate_runs_and_share_the_intact_network(tiny_model, tokenizer, split,
                                                                                tmp_path, monkeypatch):
    model = tiny_model("llama")
    evaluation = split[1]
    alone = [prune(model, tokenizer, evaluation, "random_in_range", layers=[1, 2, 3], seed=seed, n_remove=2,
                   task="arc_easy", progress=False) for seed in range(4)]
    runners = []

    class RecordedRunner(PrefixRunner):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            runners.append(self)

    monkeypatch.setattr(engine_module, "PrefixRunner", RecordedRunner)
    store = Store(tmp_path)
    stored = prune(model, tokenizer, evaluation, "random_in_range", layers=[1, 2, 3], seed=2, n_remove=2,
                   task="arc_easy", store=store, progress=False)
    together = prune_seeds(model, tokenizer, evaluation, "random_in_range", range(4), layers=[1, 2, 3], n_remove=2,
                           task="arc_easy", store=store, progress=False)
    assert together[2].key == stored.key  # a stored seed is served, not recomputed
    for mine, reference in zip(together, alone):
        assert mine.removal_order() == reference.removal_order()
        np.testing.assert_allclose(mine.scores, reference.scores, atol=1e-5)
    # the intact network (5 layers) ran once for the three new seeds; each later step from its cached prefix
    assert len(runners) == 2  # one for the stored seed's own run, one shared by the three others
    partial = sum(len([k for k in t.kept_layers(step) if k > min(set(range(5)) - set(t.kept_layers(step)))])
                  for t in (together[0], together[1], together[3]) for step in (1, 2))
    assert runners[-1].n_layer_runs == 5 + partial


def test_a_new_library_version_serves_the_same_traces_and_the_sidecar_records_the_old_one(
        tiny_model, tokenizer, split, tmp_path, monkeypatch):
    import layercollapse

    store = Store(tmp_path)
    stored = prune(tiny_model("llama"), tokenizer, split[1], "random", seed=1, store=store, progress=False)
    monkeypatch.setattr(layercollapse, "__version__", "9.9.9-other")  # a release, no numerical change
    assert [t.key for t in iter_traces(store, schedule="random", seed=1)] == [stored.key]
    assert Trace.load(store, stored.spec).key == stored.key
    record = store.load_key("trace", stored.key).meta["provenance"]
    assert record["layercollapse_version"] != "9.9.9-other" and record["token_budget"] == 1024
    assert record["environment"]["packages"]["torch"] == torch.__version__


def reference_hidden_states(model, tokenizer, items):
    """Per item (no padding): the residual streams entering layers 0..L-1, float64 [L, T, d] each."""
    from layercollapse.data.prompts import letter_prompt

    streams = []
    with torch.inference_mode():
        for item in items:
            ids = tokenizer(letter_prompt(item, "arc_easy"), return_tensors="pt").input_ids
            hidden = model.model(input_ids=ids, output_hidden_states=True).hidden_states  # L+1, the last normed
            streams.append(torch.stack(hidden[:-1])[:, 0].double())
    return streams


def test_block_influence_and_its_schedule(tiny_model, tokenizer, split):
    model = tiny_model("llama")
    calibration, evaluation = split
    influence = block_influence(model, encode_items(model, tokenizer, calibration, "letter", "arc_easy"))
    streams = reference_hidden_states(model, tokenizer, calibration)
    for layer in range(4):  # the last layer's output is not among HF's (normed) hidden states
        cosines = torch.cat([torch.cosine_similarity(s[layer], s[layer + 1], dim=-1) for s in streams])
        assert influence[layer] == pytest.approx(1 - cosines.mean().item(), abs=1e-5)
    trace = prune(model, tokenizer, evaluation, "block_influence", calibration=calibration, task="arc_easy",
                  progress=False)
    assert trace.removal_order() == list(np.argsort(influence, kind="stable")[:4])
    np.testing.assert_allclose(trace.criterion[1:], np.sort(influence)[:4])


def test_angular_distance_and_its_schedule(tiny_model, tokenizer, split):
    model = tiny_model("qwen2")
    calibration, evaluation = split
    distances = angular_distances(model, encode_items(model, tokenizer, calibration, "letter", "arc_easy"))
    assert distances.shape == (6, 6) and np.allclose(np.diag(distances), 0, atol=1e-6)
    last = torch.stack([s[:, -1] for s in reference_hidden_states(model, tokenizer, calibration)], dim=1)  # [L, R, d]
    cosine = torch.nn.functional.cosine_similarity(last[:, None], last[None, :], dim=-1).clamp(-1, 1)
    np.testing.assert_allclose(distances[:5, :5], (torch.arccos(cosine) / math.pi).mean(-1).numpy(), atol=1e-5)
    trace = prune(model, tokenizer, evaluation, "angular_distance", calibration=calibration, task="arc_easy",
                  progress=False)
    for n in range(1, 5):
        start = int(np.argmin([distances[l, l + n] for l in range(6 - n)]))
        assert trace.removed[n] == tuple(range(start, start + n))
        assert trace.kept_layers(n) == tuple(k for k in range(5) if not start <= k < start + n)
        np.testing.assert_allclose(trace.scores[n], scores_of(model, tokenizer, evaluation, trace.kept_layers(n)),
                                   atol=1e-5)


def test_bad_arguments_are_refused(tiny_model, tokenizer, split):
    model = tiny_model("llama")
    calibration, evaluation = split
    with pytest.raises(ValueError, match="overlap"):
        prune(model, tokenizer, evaluation, calibration=evaluation[:2], progress=False)
    with pytest.raises(ValueError, match="Unknown schedule"):
        prune(model, tokenizer, evaluation, "shortgpt", progress=False)
    with pytest.raises(ValueError, match="passages"):
        prune(model, tokenizer, evaluation, calibration=calibration, criterion="lm_loss", progress=False)
    with pytest.raises(ValueError, match="calibration"):
        prune(model, tokenizer, evaluation, "iterative", progress=False)
    with pytest.raises(IndexError):
        prune(model, tokenizer, evaluation, "random_in_range", layers=[3, 9], progress=False)


# -------------------------------------------------------------- store and resuming


def test_traces_round_trip_through_the_store(tiny_model, tokenizer, split, tmp_path):
    model = tiny_model("llama")
    store = Store(tmp_path)
    trace = prune(model, tokenizer, split[1], "random", seed=1, task="arc_easy", store=store, progress=False)
    assert trace.key is not None and not list((tmp_path / "trace").glob("*.partial"))
    loaded = Trace.load(store, trace.spec)
    assert loaded.removed == trace.removed and loaded.spec == trace.spec
    for name in ("scores", "kept", "gold", "criterion"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(trace, name))
    assert prune(model, tokenizer, split[1], "random", seed=1, task="arc_easy", store=store, progress=False).key \
        == trace.key
    assert [t.key for t in iter_traces(store, schedule="random", seed=1)] == [trace.key]
    frame = trace.to_frame()
    assert list(frame.columns[:10]) == ["step", "n_removed", "fraction_removed", "removed", "accuracy", "mean_dm",
                                        "of_entropy", "criterion", "schedule", "seed"]
    assert len(frame) == 5 and frame["removed"][0] == "" and (frame["seed"] == 1).all()
    np.testing.assert_allclose(frame["accuracy"], metrics.accuracy(trace.scores, trace.gold))
    assert trace.option_frequency().shape == (5, 5)


def test_a_trace_of_another_compute_version_is_recomputed_not_served(tiny_model, tokenizer, split, tmp_path,
                                                                      monkeypatch):
    """Traces are keyed by the trace compute version (provenance.COMPUTE_VERSIONS["trace"])."""
    model = tiny_model("llama")
    store = Store(tmp_path)
    old = prune(model, tokenizer, split[1], "random", seed=2, task="arc_easy", store=store, progress=False)
    assert store.load_key("trace", old.key).meta["provenance"]["compute_version"] == "trace.v1"
    monkeypatch.setitem(provenance.COMPUTE_VERSIONS, "trace", 2)
    assert Trace.load(store, old.spec) is None
    assert list(iter_traces(store, schedule="random", seed=2)) == []
    assert [t.key for t in iter_traces(store, any_code=True, schedule="random", seed=2)] == [old.key]
    new = prune(model, tokenizer, split[1], "random", seed=2, task="arc_easy", store=store, progress=False)
    assert new.key != old.key and Trace.load(store, old.spec).key == new.key
    np.testing.assert_array_equal(new.scores, old.scores)  # same numbers in fact, under a new key


RESUMABLE_RUN = """
import json, os, signal, sys
sys.path.insert(0, {tests!r})
from conftest import build_tiny_model
from transformers import AutoTokenizer
from layercollapse.model import embedded
from layercollapse.storage import store as store_module
from layercollapse.model.loading import prepare_tokenizer_
from layercollapse.pruning.engine import prune
from layercollapse.data.tasks import load_task, split_calibration

die_after = int(sys.argv[2])
written = []
append = store_module.Checkpoint.append_step
def append_then_maybe_die(self, step, row, arrays=None):
    append(self, step, row, arrays)
    written.append(step)
    if step == die_after:
        os.kill(os.getpid(), signal.SIGKILL)
store_module.Checkpoint.append_step = append_then_maybe_die

path = embedded.gguf_path(embedded.SMOLLM2)
tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
prepare_tokenizer_(tokenizer)
calibration, evaluation = split_calibration(load_task("arc_easy").items, 4, 4, seed=1)
trace = prune(build_tiny_model("llama", n_layers=6), tokenizer, evaluation, calibration=calibration,
              task="arc_easy", store=store_module.Store(sys.argv[1]), progress=False)
print(json.dumps({{"written": written, "removed": trace.removal_order(), "scores": trace.scores.tolist()}}))
"""


@pytest.mark.slow
def test_a_killed_run_resumes_from_its_last_step_with_identical_results(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(RESUMABLE_RUN.format(tests=str(TESTS))))

    def run(store: Path, die_after: int) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(script), str(store), str(die_after)], capture_output=True,
                              text=True, timeout=300)

    killed = run(tmp_path / "resumed", die_after=2)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert len(list((tmp_path / "resumed" / "trace").glob("*.partial/step_*.json"))) == 3
    resumed = run(tmp_path / "resumed", die_after=-1)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    resumed = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert resumed["written"] == [3, 4, 5]  # steps 0-2 came from the checkpoint
    whole = run(tmp_path / "whole", die_after=-1)
    whole = json.loads(whole.stdout.strip().splitlines()[-1])
    assert whole["written"] == [0, 1, 2, 3, 4, 5]
    assert resumed["removed"] == whole["removed"]
    np.testing.assert_array_equal(np.array(resumed["scores"]), np.array(whole["scores"]))


# ---------------------------------------------------------------------------- CLI


# ----------------------------------------------------------------- CLI faults


def test_a_trace_is_found_by_the_key_of_the_one_spec_builder_and_never_served_shorter(tiny_model, tokenizer, split,
                                                                                      tmp_path):
    from layercollapse.pruning.trace import NetworkIdentity, trace_spec

    store = Store(tmp_path)
    model = tiny_model("llama")
    calibration, evaluation = split
    short = prune(model, tokenizer, evaluation, "random", seed=1, n_remove=2, store=store, progress=False)
    known = NetworkIdentity(model.layercollapse_name, "float32", "model", 5)  # what a reader knows without weights
    assert NetworkIdentity.of(model) == known
    # what the schedule does not use is not recorded, however it is asked for: calibration, criterion, layers
    asked = trace_spec(known, "random", evaluation, calibration, criterion="acc", seed=1, layers=[0])
    assert asked == {**short.spec, "n_remove": 4}  # the default length: all layers but one
    assert Trace.load(store, asked) is None  # the full-length trace is not stored: the short one is not served
    assert Trace.load(store, trace_spec(known, "random", evaluation, seed=1, n_remove=2)).key == short.key
    assert Trace.load(store, trace_spec(known, "random", evaluation, seed=2, n_remove=2)) is None
    full = prune(model, tokenizer, evaluation, "random", seed=1, store=store, progress=False)
    assert Trace.load(store, asked).key == full.key != short.key


def test_single_layer_costs_equal_removing_each_layer_from_scratch(tiny_model, tokenizer, items):
    from layercollapse.claims.pruned_transitions import single_layer_costs
    from layercollapse.model.layers import drop_layers
    from layercollapse.pruning.engine import single_layer_removals
    from layercollapse.readout.lens import layerwise_scores
    from layercollapse.readout.scoring import score

    model = tiny_model("mistral")
    gold = np.array([item.gold for item in items])
    removals = single_layer_removals(model, tokenizer, items, task="arc_easy", progress=False)
    np.testing.assert_allclose(removals["intact"], score(model, tokenizer, items, "letter", task="arc_easy"),
                               atol=1e-5)
    for layer in range(5):
        kept = [other for other in range(5) if other != layer]
        with drop_layers(model, [layer]):
            np.testing.assert_allclose(removals["scores"][layer], score(model, tokenizer, items, "letter",
                                                                        task="arc_easy"), atol=1e-5)
        np.testing.assert_allclose(removals["readouts"][layer],
                                   layerwise_scores(model, tokenizer, items, "letter", layers=kept, task="arc_easy",
                                                    progress=False), atol=1e-5)
    costs = single_layer_costs(removals, gold, n_resamples=100)
    assert costs["layer"].tolist() == list(range(5))
    intact = metrics.accuracy(removals["intact"], gold)
    np.testing.assert_allclose(costs["accuracy_drop"], intact - metrics.accuracy(removals["scores"], gold), atol=1e-12)
    assert set(costs["outcome"]) <= {"kept", "weakened", "delayed", "earlier", "prevented"}


def test_fewshot_examples_are_seeded_solved_items_disjoint_from_the_evaluated_ones():
    from layercollapse.data.tasks import (
        TASK_REGISTRY,
        fewshot_examples,
        load_task,
        subsample,
    )

    evaluated = subsample(load_task("arc_easy").items, 40, 0)  # the default split is also the few-shot split
    assert TASK_REGISTRY["arc_easy"].fewshot_split == load_task("arc_easy").split
    shots = fewshot_examples("arc_easy", 5, seed=3, exclude=evaluated)
    assert len(shots) == 5 and len({shot.id for shot in shots}) == 5
    assert not {shot.id for shot in shots} & {item.id for item in evaluated}
    assert shots == fewshot_examples("arc_easy", 5, seed=3, exclude=evaluated)
    assert shots != fewshot_examples("arc_easy", 5, seed=4, exclude=evaluated)
    assert fewshot_examples("arc_easy", 0) == ()
    with pytest.raises(ValueError, match="shots=-1"):
        fewshot_examples("arc_easy", -1)


def test_shots_are_in_the_trace_spec_only_when_there_are_some(tiny_model, tokenizer, split):
    calibration, evaluation = split[0][:2], split[1][:3]
    shots = fewshot_examples("arc_easy", 2, 0, exclude=(*calibration, *evaluation))
    model = tiny_model("llama")
    zero = prune(model, tokenizer, evaluation, "reverse", n_remove=1, task="arc_easy", progress=False)
    assert "shot_ids" not in zero.spec  # zero-shot traces keep the keys they were stored under
    cloze = prune(model, tokenizer, evaluation, "reverse", n_remove=1, format="cloze", shots=shots, task="arc_easy",
                  progress=False)  # cloze prompts take solved examples too, as the harness writes them
    assert cloze.spec["shot_ids"] == [shot.id for shot in shots]
    np.testing.assert_allclose(cloze.scores[0], score(model, tokenizer, evaluation, "cloze", task="arc_easy",
                                                      shots=shots, progress=False), atol=1e-5)
    with pytest.raises(ValueError, match="1 solved example\\(s\\) are also evaluation or calibration items"):
        prune(model, tokenizer, evaluation, "iterative", calibration=calibration, shots=(calibration[0],),
              progress=False)
