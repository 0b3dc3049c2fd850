"""Batching: cloze options packed behind one copy of their context score exactly as one sequence per option."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import TINY_ARCHITECTURES, build_tiny_model
from layercollapse.data.tasks import Item
from layercollapse.pruning.prefix import PrefixRunner
from layercollapse.pruning.encoding import encode_items
from layercollapse.readout.batching import (
    collate_packed,
    pack_rows,
    plan_rows,
    row_length,
)
from layercollapse.readout.lens import layerwise_scores
from layercollapse.readout.scoring import build_requests, score


def per_option(model, tokenizer, items, layers=None):
    """The harness's layout: one sequence per option (no packing)."""
    return score(model, tokenizer, items, "cloze", layers, task="arc_easy", progress=False, shared_context=False)


@pytest.mark.parametrize("arch", [arch for arch in TINY_ARCHITECTURES if arch != "gemma3"])  # Gemma-3: below
def test_packed_scores_equal_one_sequence_per_option(tiny_model, tokenizer, items, arch):
    model = tiny_model(arch)
    reference = per_option(model, tokenizer, items)
    for budget in (64, 1024):  # many small batches, and a few mixed-length ones
        packed = score(model, tokenizer, items, "cloze", task="arc_easy", token_budget=budget, progress=False)
        np.testing.assert_allclose(packed, reference, atol=2e-5)
    kept = [0, 2, 4]  # and under a layer view
    np.testing.assert_allclose(score(model, tokenizer, items, "cloze", kept, task="arc_easy", progress=False),
                               per_option(model, tokenizer, items, kept), atol=2e-5)


def test_packed_layerwise_readout_and_pruning_runs_equal_per_option(tiny_model, tokenizer, items):
    model = tiny_model("llama")
    packed = layerwise_scores(model, tokenizer, items, "cloze", task="arc_easy", progress=False)
    alone = layerwise_scores(model, tokenizer, items, "cloze", task="arc_easy", progress=False, shared_context=False)
    np.testing.assert_allclose(packed, alone, atol=2e-5)
    runners = [PrefixRunner(model, encode_items(model, tokenizer, items, "cloze", "arc_easy", shared_context=shared))
               for shared in (True, False)]
    for runner in runners:
        runner.remember(range(5))
    assert runners[0].encoded.n_tokens < runners[1].encoded.n_tokens
    for kept in ([0, 1, 2, 3, 4], [0, 1, 3, 4], [0, 4]):  # from the remembered prefix, then from the embeddings
        np.testing.assert_allclose(runners[0].run(kept), runners[1].run(kept), atol=2e-5)


def test_gemma3_packs_inside_its_window_and_falls_back_outside(tokenizer, items):
    narrow = build_tiny_model("gemma3")  # sliding window 16 < every row: one request per row
    requests = build_requests(tokenizer, items, "cloze", "arc_easy")
    assert all(len(row) == 1 for rows in plan_rows(narrow, requests, 1024) for row in rows)
    np.testing.assert_allclose(score(narrow, tokenizer, items, "cloze", task="arc_easy", progress=False),
                               per_option(narrow, tokenizer, items), atol=2e-5)
    wide = build_tiny_model("gemma3")
    wide.config.sliding_window = 512  # every packed row fits: sliding and global layers see the same mask
    for module in wide.modules():
        if getattr(module, "sliding_window", None) == 16:
            module.sliding_window = 512
    assert all(len(row) > 1 for row in plan_rows(wide, requests, 1024)[0])
    np.testing.assert_allclose(score(wide, tokenizer, items, "cloze", task="arc_easy", progress=False),
                               per_option(wide, tokenizer, items), atol=2e-5)


def test_rows_hold_the_context_once_and_winogrande_options_stay_apart(tokenizer, items):
    requests = build_requests(tokenizer, items, "cloze", "arc_easy")
    rows = pack_rows(requests)
    assert len(rows) == len(items) and sum(len(row) for row in rows) == len(requests)
    assert sum(row_length(row) for row in rows) < 0.6 * sum(len(r.tokens) for r in requests)
    blank = Item("w1", "The trophy does not fit in the suitcase because the _ is too big.", ("trophy", "suitcase"), 0)
    wino = build_requests(tokenizer, [blank], "cloze", "winogrande")  # contexts differ (the option fills the blank)
    assert [len(row) for row in pack_rows(wino)] == [1, 1]
    letter = build_requests(tokenizer, items, "letter", "arc_easy")
    assert [len(row) for row in pack_rows(letter)] == [1] * len(items)


def test_packed_mask_lets_an_option_see_the_context_and_itself_only(tokenizer, items):
    row = pack_rows(build_requests(tokenizer, items[:1], "cloze", "arc_easy"))[0]
    batch = collate_packed([row], tokenizer.pad_token_id, torch.device("cpu"), torch.float32)
    allowed = batch.attention_mask[0, 0] == 0  # [T, T]
    n_context = len(row[0].tokens) - row[0].n_target
    first, second = n_context, n_context + row[0].n_target  # first token of options 0 and 1
    assert allowed[second, :n_context].all() and not allowed[second, first:second].any()
    assert allowed[first, first] and not allowed[first, first + 1:].any()
    assert batch.position_ids[0, second] == n_context == batch.position_ids[0, first]


def test_layer_statistics_refuse_packed_rows(tiny_model, tokenizer, items):
    from layercollapse.pruning.statistics import angular_distances, block_influence

    model = tiny_model("llama")
    packed = encode_items(model, tokenizer, items, "cloze", "arc_easy")
    for statistic in (block_influence, angular_distances):
        with pytest.raises(ValueError, match="shared_context=False"):
            statistic(model, packed)
