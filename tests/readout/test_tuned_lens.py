"""Tuned lens: identity at init, KL reduction after training, frozen model, layer keys."""

import numpy as np
import pytest
import torch
from layercollapse.model.layers import n_layers
from layercollapse.readout.lens import layerwise_scores
from layercollapse.readout.tuned_lens import TunedLens, kl_to_final, train_tuned_lens


def texts_of(items):
    return [f"{item.question} {' '.join(item.options)}" for item in items]


@pytest.fixture(scope="module")
def trained(tiny_model, tokenizer, items):
    """A lens for the embeddings and layers 0-2 of the tiny Llama, four epochs over the items' text."""
    return train_tuned_lens(tiny_model("llama"), tokenizer, texts_of(items), layers=[-1, 0, 1, 2], steps=16,
                            lr=1e-2, batch_size=3, max_tokens=32)


@pytest.mark.parametrize("arch", ["llama", "gemma3"])
def test_untrained_tuned_lens_is_exactly_the_logit_lens(tiny_model, tokenizer, items, arch):
    model = tiny_model(arch)
    identity = TunedLens.for_model(model)
    expected = layerwise_scores(model, tokenizer, items[:4], progress=False)
    np.testing.assert_array_equal(layerwise_scores(model, tokenizer, items[:4], lens=identity, progress=False), expected)


def test_trained_lens_is_closer_to_the_final_layer_at_middle_layers(tiny_model, tokenizer, items, trained):
    """On its calibration text (a random model has little to generalise), KL falls below the logit lens's."""
    model = tiny_model("llama")
    calibration = texts_of(items)
    last = n_layers(model) - 1
    readouts = [0, 1, 2, last]
    logit = kl_to_final(model, tokenizer, calibration, TunedLens.for_model(model), readouts, max_tokens=32)  # [4]
    tuned = kl_to_final(model, tokenizer, calibration, trained, readouts, max_tokens=32)
    assert np.all(tuned[:3] < logit[:3]), (tuned, logit)
    assert tuned[-1] == logit[-1] == pytest.approx(0.0, abs=1e-6)  # the last layer is the output itself


def test_training_leaves_the_model_frozen_and_unchanged(tiny_model, tokenizer, items):
    model = tiny_model("qwen2")
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    train_tuned_lens(model, tokenizer, texts_of(items[:2]), layers=[1], steps=2, batch_size=2)
    for name, parameter in model.named_parameters():
        assert parameter.requires_grad and parameter.grad is None
        assert torch.equal(parameter, before[name])


def test_translators_are_fp32_keyed_by_original_layer_and_round_trip(tiny_model, tokenizer, items, trained):
    model = tiny_model("llama")
    last = n_layers(model) - 1
    assert trained.layers == (-1, 0, 1, 2) and TunedLens.for_model(model).layers == tuple(range(-1, last))
    assert all(p.dtype == torch.float32 for p in trained.parameters())
    copy = TunedLens.for_model(model, trained.layers)
    copy.load_state_dict(trained.state_dict())
    h = torch.randn(3, 64)
    assert torch.equal(copy.transform_hidden(h, 2), trained.transform_hidden(h, 2))
    assert torch.equal(trained.transform_hidden(h, last), h)  # final layer: identity
    with pytest.raises(KeyError, match="no translator for layer 3"):
        TunedLens.for_model(model, layers=[1]).transform_hidden(h, 3)


def test_trained_lens_plugs_into_layerwise_scores_on_a_pruned_view(tiny_model, tokenizer, items, trained):
    model = tiny_model("llama")
    kept = [0, 2, n_layers(model) - 1]
    tuned = layerwise_scores(model, tokenizer, items[:4], layers=kept, lens=trained, progress=False)
    logit = layerwise_scores(model, tokenizer, items[:4], layers=kept, progress=False)
    assert tuned.shape == (len(kept) + 1, 4, logit.shape[-1])
    np.testing.assert_array_equal(tuned[-1], logit[-1])
    assert not np.allclose(tuned[1], logit[1])
