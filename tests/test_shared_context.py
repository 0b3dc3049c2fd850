"""Cloze scoring with a shared context equals one sequence per option (scoring.score)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import build_tiny_model

from layercollapse.scoring import build_requests, score
from layercollapse.shared_context import collate_rows, pack_rows, row_length, score_shared_context


@pytest.mark.parametrize("arch", ["llama", "qwen2", "mistral"])
def test_shared_context_scores_equal_one_sequence_per_option(tiny_model, tokenizer, items, arch):
    model = tiny_model(arch)
    reference = score(model, tokenizer, items, "cloze", task="arc_easy", progress=False)
    for budget in (64, 1024):  # many small batches, and a few mixed-length ones
        shared = score_shared_context(model, tokenizer, items, task="arc_easy", token_budget=budget)
        np.testing.assert_allclose(shared, reference, atol=2e-5)
    kept = [0, 2, 4]  # and under a layer view
    np.testing.assert_allclose(score_shared_context(model, tokenizer, items, kept, task="arc_easy"),
                               score(model, tokenizer, items, "cloze", kept, task="arc_easy", progress=False),
                               atol=2e-5)


def test_gemma3_packs_inside_its_window_and_falls_back_outside(tokenizer, items):
    narrow = build_tiny_model("gemma3")  # sliding window 16 < every row: one request per row, as score()
    np.testing.assert_allclose(score_shared_context(narrow, tokenizer, items, task="arc_easy"),
                               score(narrow, tokenizer, items, "cloze", task="arc_easy", progress=False), atol=2e-5)
    wide = build_tiny_model("gemma3")
    wide.config.sliding_window = 512  # every packed row fits: sliding and global layers see the same mask
    for module in wide.modules():
        if getattr(module, "sliding_window", None) == 16:
            module.sliding_window = 512
    np.testing.assert_allclose(score_shared_context(wide, tokenizer, items, task="arc_easy"),
                               score(wide, tokenizer, items, "cloze", task="arc_easy", progress=False), atol=2e-5)


def test_rows_hold_the_context_once_and_winogrande_options_stay_apart(tokenizer, items):
    requests = build_requests(tokenizer, items, "cloze", "arc_easy")
    rows = pack_rows(requests)
    assert len(rows) == len(items) and sum(len(row) for row in rows) == len(requests)
    assert sum(row_length(row) for row in rows) < 0.6 * sum(len(r.tokens) for r in requests)
    from layercollapse.tasks import Item

    blank = Item("w1", "The trophy does not fit in the suitcase because the _ is too big.", ("trophy", "suitcase"), 0)
    wino = build_requests(tokenizer, [blank], "cloze", "winogrande")  # contexts differ (the option fills the blank)
    assert [len(row) for row in pack_rows(wino)] == [1, 1]


def test_collated_mask_lets_an_option_see_the_context_and_itself_only(tokenizer, items):
    row = pack_rows(build_requests(tokenizer, items[:1], "cloze", "arc_easy"))[0]
    batch = collate_rows([row], tokenizer.pad_token_id, torch.device("cpu"), torch.float32)
    allowed = batch.attention_mask[0, 0] == 0  # [T, T]
    n_context = len(row[0].tokens) - row[0].n_target
    first, second = n_context, n_context + row[0].n_target  # first token of options 0 and 1
    assert allowed[second, :n_context].all() and not allowed[second, first:second].any()
    assert allowed[first, first] and not allowed[first, first + 1:].any()
    assert batch.position_ids[0, second] == n_context == batch.position_ids[0, first]
