"""The control experiments as library functions (what ``Experiments`` stores), each against its definition
computed the plain way on a tiny random model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from layercollapse.controls.finetune import finetune_recovery
from layercollapse.controls.noise import inject_noise, noise_sweep
from layercollapse.controls.similarity import (
    hidden_states_at_read_positions,
    representation_similarity,
    similarity_along,
)
from layercollapse.model.layers import keep_layers
from layercollapse.pruning.prefix import PrefixRunner
from layercollapse.pruning.encoding import encode_items
from layercollapse.pruning.trace import lm_loss_along
from layercollapse.pruning.engine import prune
from layercollapse.readout.scoring import score
from layercollapse.readout.tuned_lens import tuned_readout

PASSAGES = ["The cell membrane controls what enters and leaves the cell, and it is made of lipids.",
            "Water boils at a lower temperature on a mountain because the air pressure there is lower."]


@pytest.fixture(scope="module")
def trace(tiny_model, tokenizer, items):
    return prune(tiny_model("llama"), tokenizer, items[:6], "reverse", format="letter", progress=False)


def test_lm_loss_along_a_trace_is_the_mean_next_token_loss_of_each_pruned_network(tiny_model, tokenizer, trace):
    model = tiny_model("llama")
    losses = lm_loss_along(model, tokenizer, PASSAGES, trace)
    expected = []
    for step in range(trace.n_steps):
        total, n_tokens = 0.0, 0
        with torch.inference_mode(), keep_layers(model, trace.kept_layers(step)):
            for text in PASSAGES:
                ids = torch.tensor([tokenizer(text, add_special_tokens=True).input_ids])
                logits = model(ids).logits[0, :-1].float()  # [T - 1, vocab]
                total += F.cross_entropy(logits, ids[0, 1:], reduction="sum").item()
                n_tokens += ids.shape[1] - 1
        expected.append(total / n_tokens)
    np.testing.assert_allclose(losses, expected, rtol=1e-4)
    assert losses.shape == (trace.n_steps,) and len(set(np.round(losses, 6))) == trace.n_steps  # each step its own


def test_similarity_along_a_trace_compares_each_network_with_the_intact_one(tiny_model, tokenizer, items, trace):
    model = tiny_model("llama")
    table = similarity_along(model, tokenizer, items[:6], trace, "letter")
    assert table["step"].tolist() == list(range(trace.n_steps))
    assert table.loc[0, "cka"] == pytest.approx(1.0) and table.loc[0, "cosine"] == pytest.approx(1.0)
    intact = hidden_states_at_read_positions(model, tokenizer, items[:6], "letter")[-1]
    last = trace.n_steps - 1
    pruned = hidden_states_at_read_positions(model, tokenizer, items[:6], "letter", layers=trace.kept_layers(last))
    assert table.loc[last, ["cka", "cosine"]].tolist() == pytest.approx(
        list(representation_similarity(intact, pruned).values()))


def test_the_noise_sweep_runs_each_layer_variance_and_draw_like_noise_on_the_full_forward(tiny_model, tokenizer,
                                                                                           items):
    model = tiny_model("llama")
    runner = PrefixRunner(model, encode_items(model, tokenizer, items[:6], "letter"))
    runner.remember(range(5))
    table, scores = noise_sweep(runner, [(1, "silent"), (3, "decisive")], (0.0, 0.1), n_draws=2)
    assert table[["layer", "sigma2", "draw"]].values.tolist() == [[1, 0.0, 0], [1, 0.1, 0], [1, 0.1, 1],
                                                                   [3, 0.0, 0], [3, 0.1, 0], [3, 0.1, 1]]
    clean = score(model, tokenizer, items[:6], "letter", progress=False)
    np.testing.assert_allclose(scores[0], clean, atol=1e-5)  # variance 0 adds nothing
    with inject_noise(model, [3], 0.1, seed=1):
        noisy = score(model, tokenizer, items[:6], "letter", progress=False)
    np.testing.assert_allclose(scores[5], noisy, atol=1e-5)
    assert not np.allclose(scores[4], scores[5])  # two draws, two noises


def test_finetune_recovery_scores_each_pruned_network_before_and_after_training(tiny_model, tokenizer, items, trace):
    model = tiny_model("llama")
    rows, arrays = finetune_recovery(model, tokenizer, trace, [1, 2], items[6:10], items[:6], "letter", None,
                                     train_steps=2, lr=1e-3, method="full", seed=0)
    assert [(row["step"], row["n_removed"], row["n_kept"]) for row in rows] == [(1, 1, 4), (2, 2, 3)]
    np.testing.assert_array_equal(arrays["scores_before"], trace.scores[[1, 2]])
    assert arrays["scores_after"].shape == (2, 6, trace.scores.shape[-1]) and arrays["losses"].shape == (2, 2)
    assert not np.allclose(arrays["scores_after"], arrays["scores_before"])  # training moved the network


def test_tuned_readout_reads_every_layer_and_compares_both_lenses(tiny_model, tokenizer, items):
    model = tiny_model("llama")
    table, scores = tuned_readout(model, tokenizer, items[:6], PASSAGES * 2, "letter", None, steps=2,
                                  max_tokens=24, seed=0)
    assert table["layer"].tolist() == [-1, 0, 1, 2, 3, 4] and scores.shape[:2] == (6, 6)
    assert table.loc[table["layer"] == 4, ["kl_logit", "kl_tuned"]].values.tolist() == [[0.0, 0.0]]  # the output
