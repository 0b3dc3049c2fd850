"""Scoring and the logit lens against naive references on tiny models."""

import numpy as np
import pytest
import torch
from conftest import TINY_ARCHITECTURES
from layercollapse.data.prompts import cloze_pairs, letter_prompt
from layercollapse.readout.batching import plan_batches
from layercollapse.readout.lens import layerwise_scores
from layercollapse.readout.scoring import (
    build_requests,
    encode_cloze_pair,
    letter_token_ids,
    score,
)

#: Every tiny architecture but Mistral, whose decoder is Llama's (no sliding window here): test_layers covers it.
ARCHS = [arch for arch in TINY_ARCHITECTURES if arch != "mistral"]


def naive_letter(model, tokenizer, items):
    """One unpadded full forward per item; log-softmax at the last position."""
    letters = letter_token_ids(tokenizer, max(len(i.options) for i in items))
    out = np.full((len(items), len(letters)), -np.inf, dtype=np.float32)
    for n, item in enumerate(items):
        ids = torch.tensor([tokenizer(letter_prompt(item, "arc_easy")).input_ids])
        with torch.inference_mode():
            logprobs = torch.log_softmax(model(input_ids=ids).logits[0, -1].float(), -1)
        out[n, : len(item.options)] = logprobs[letters[: len(item.options)]].numpy()
    return out


def naive_cloze(model, tokenizer, items):
    """One unpadded forward per option; summed log-prob of the continuation tokens."""
    out = np.full((len(items), max(len(i.options) for i in items)), -np.inf, dtype=np.float32)
    for n, item in enumerate(items):
        for k, (context, continuation) in enumerate(cloze_pairs(item, "arc_easy")):
            context_ids, target_ids = encode_cloze_pair(tokenizer, context, continuation)
            ids = torch.tensor([context_ids + target_ids])
            with torch.inference_mode():
                logprobs = torch.log_softmax(model(input_ids=ids).logits[0].float(), -1)
            positions = range(len(context_ids) - 1, ids.shape[1] - 1)
            out[n, k] = sum(logprobs[p, t].item() for p, t in zip(positions, target_ids))
    return out


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("format", ["letter", "cloze"])
def test_batched_scoring_equals_naive_one_item_at_a_time(tiny_model, tokenizer, items, arch, format):
    model = tiny_model(arch)
    naive = (naive_letter if format == "letter" else naive_cloze)(model, tokenizer, items)
    batched = score(model, tokenizer, items, format, task="arc_easy", token_budget=4096, progress=False)
    np.testing.assert_array_equal(np.isinf(batched), np.isinf(naive))
    finite = np.isfinite(naive)
    np.testing.assert_allclose(batched[finite], naive[finite], atol=2e-4, rtol=1e-5)


def test_batch_size_does_not_change_scores(tiny_model, tokenizer, items):
    model = tiny_model("llama")
    small = score(model, tokenizer, items, "cloze", task="arc_easy", token_budget=64, progress=False)
    large = score(model, tokenizer, items, "cloze", task="arc_easy", token_budget=1 << 16, progress=False)
    np.testing.assert_allclose(small, large, atol=2e-4)
    assert score(model, tokenizer, items, "letter", progress=False).dtype == np.float32


def test_items_with_fewer_options_are_padded_with_minus_inf(tiny_model, tokenizer, items):
    scores = score(tiny_model("llama"), tokenizer, items, "letter", progress=False)
    short = [n for n, item in enumerate(items) if len(item.options) < scores.shape[1]]
    assert short and all(np.isneginf(scores[n, len(items[n].options):]).all() for n in short)


def test_batches_respect_the_token_budget(tokenizer, items):
    lengths = [len(r.tokens) for r in build_requests(tokenizer, items, "cloze", "arc_easy")]
    for batch in plan_batches(lengths, 300):
        assert len(batch) == 1 or len(batch) * max(lengths[i] for i in batch) <= 300
    assert sorted(i for b in plan_batches(lengths, 300) for i in b) == list(range(len(lengths)))


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("format", ["letter", "cloze"])
def test_logit_lens_at_l_equals_the_network_truncated_after_l(tiny_model, tokenizer, items, arch, format):
    model = tiny_model(arch)
    readout = layerwise_scores(model, tokenizer, items, format, task="arc_easy", progress=False)
    assert readout.shape[0] == 5 + 1
    for depth in range(6):
        truncated = score(model, tokenizer, items, format, layers=range(depth), task="arc_easy", progress=False)
        np.testing.assert_allclose(readout[depth], truncated, atol=1e-4)


def test_lens_on_a_pruned_network_reads_its_kept_layers(tiny_model, tokenizer, items):
    model = tiny_model("qwen2")
    kept = [0, 2, 4]
    readout = layerwise_scores(model, tokenizer, items, "letter", layers=kept, progress=False)
    np.testing.assert_allclose(readout[-1], score(model, tokenizer, items, "letter", layers=kept, progress=False),
                               atol=1e-5)
    np.testing.assert_allclose(readout[2], score(model, tokenizer, items, "letter", layers=[0, 2], progress=False),
                               atol=1e-4)
