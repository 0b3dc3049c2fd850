"""Layer views against an independently built smaller model."""

import copy

import numpy as np
import pytest
import torch
from conftest import TINY_ARCHITECTURES
from layercollapse.model.architectures import UnsupportedArchitecture, decoder_layers
from layercollapse.model.layers import drop_layers, keep_layers, n_layers


def reference_without(model, removed: set[int]):
    """A new model built with fewer layers and the kept layers' weights copied in (no views involved)."""
    config = copy.deepcopy(model.config)
    kept = [i for i in range(config.num_hidden_layers) if i not in removed]
    config.num_hidden_layers = len(kept)
    if getattr(config, "layer_types", None) is not None:
        config.layer_types = [config.layer_types[i] for i in kept]
    reference = type(model)(config).float().eval()
    state = {}
    for name, value in model.state_dict().items():
        if name.startswith("model.layers."):
            index = int(name.split(".")[2])
            if index in removed:
                continue
            name = name.replace(f"model.layers.{index}.", f"model.layers.{kept.index(index)}.", 1)
        state[name] = value
    reference.load_state_dict(state)
    return reference


def logits(model, ids, mask):
    with torch.inference_mode():
        return model(input_ids=ids, attention_mask=mask).logits


@pytest.fixture()
def batch(tokenizer):
    encoded = tokenizer(["The cat sat on the mat because it was", "Hello"], return_tensors="pt", padding=True)
    return encoded.input_ids, encoded.attention_mask


@pytest.mark.parametrize("arch", TINY_ARCHITECTURES)
def test_dropping_nothing_is_the_intact_model(tiny_model, batch, arch):
    model = tiny_model(arch)
    expected = logits(model, *batch)
    with drop_layers(model, []):
        torch.testing.assert_close(logits(model, *batch), expected, rtol=0, atol=0)


@pytest.mark.parametrize("arch", TINY_ARCHITECTURES)
@pytest.mark.parametrize("removed", [{0}, {2}, {4}, {1, 3}])
def test_dropping_equals_a_model_built_without_those_layers(tiny_model, batch, arch, removed):
    model = tiny_model(arch)
    reference = reference_without(model, removed)
    with drop_layers(model, removed):
        got = logits(model, *batch)
    torch.testing.assert_close(got, logits(reference, *batch), rtol=1e-5, atol=1e-5)


def test_view_shares_weights_and_restores_bookkeeping(tiny_model):
    model = tiny_model("gemma3", n_layers=6)
    types_before = list(model.config.layer_types)
    layers_before = decoder_layers(model)
    with drop_layers(model, [0, 1]) as view:
        assert view is model
        assert model.config.num_hidden_layers == 4
        assert model.config.layer_types == types_before[2:]
        assert [layer.self_attn.layer_idx for layer in decoder_layers(model)] == [0, 1, 2, 3]
        assert decoder_layers(model)[0] is layers_before[2]
        assert n_layers(model) == 6
    assert decoder_layers(model) is layers_before
    assert model.config.num_hidden_layers == 6 and model.config.layer_types == types_before
    assert [layer.self_attn.layer_idx for layer in layers_before] == list(range(6))


def test_view_restores_after_an_exception(tiny_model):
    model = tiny_model("llama")
    with pytest.raises(RuntimeError, match="boom"):
        with drop_layers(model, [1]):
            raise RuntimeError("boom")
    assert len(decoder_layers(model)) == 5 and model.config.num_hidden_layers == 5


def test_bad_indices_raise_before_touching_the_model(tiny_model):
    model = tiny_model("llama")
    with pytest.raises(IndexError, match="out of range.*0..4"):
        with drop_layers(model, [5]):
            pass
    with pytest.raises(IndexError):
        with drop_layers(model, [-1]):
            pass
    with pytest.raises(ValueError, match="repeat"):
        with drop_layers(model, [1, 1]):
            pass
    with pytest.raises(ValueError, match=r"kept layers \[3\] are removed by the layer view already active"):
        with keep_layers(model, [0, 1]), keep_layers(model, [1, 3]):
            pass
    assert len(decoder_layers(model)) == 5


def test_unknown_architecture_is_refused():
    from transformers import GPT2Config, GPT2LMHeadModel

    model = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=100))
    with pytest.raises(UnsupportedArchitecture, match="GPT2LMHeadModel is not supported"):
        with drop_layers(model, [0]):
            pass


def test_views_nest_and_restore_the_enclosing_view(tiny_model, tokenizer, items):
    """A view inside a view runs a subset of its layers; leaving it restores the enclosing view exactly."""
    from layercollapse.model.layers import active_layers
    from layercollapse.readout.scoring import score

    model = tiny_model("gemma3")  # layer_types travel with the layers
    types = list(model.config.layer_types)
    numbering = [m.layer_idx for layer in model.model.layers for m in layer.modules() if hasattr(m, "layer_idx")]
    direct = score(model, tokenizer, items[:4], "letter", layers=[0, 4], progress=False)
    with drop_layers(model, [1]):
        assert active_layers(model) == [0, 2, 3, 4]
        with drop_layers(model, [2, 3]):
            assert active_layers(model) == [0, 4] and model.config.layer_types == [types[0], types[4]]
            assert [m.layer_idx for m in model.model.layers[1].modules() if hasattr(m, "layer_idx")][0] == 1
            nested = score(model, tokenizer, items[:4], "letter", progress=False)  # scores the active view
        assert active_layers(model) == [0, 2, 3, 4] and len(model.model.layers) == 4
        assert model.config.layer_types == [types[i] for i in (0, 2, 3, 4)]
    assert active_layers(model) == list(range(5)) and model.config.layer_types == types
    assert [m.layer_idx for layer in model.model.layers for m in layer.modules() if hasattr(m, "layer_idx")] == numbering
    np.testing.assert_array_equal(nested, direct)
