"""Noise injection: zero variance is the intact model, seeded reproducibility, hooks removed."""

import numpy as np
import pytest
import torch
from layercollapse.controls.noise import add_noise, inject_noise, noise_scale
from layercollapse.readout.scoring import score


def hooks_on(model):
    return sum(len(module._forward_hooks) for module in model.modules())


def test_zero_variance_is_the_intact_model(tiny_model, tokenizer, items):
    model = tiny_model("llama")
    intact = score(model, tokenizer, items, progress=False)
    with inject_noise(model, [0, 3], variance=0.0, seed=0):
        np.testing.assert_array_equal(score(model, tokenizer, items, progress=False), intact)


def test_noise_changes_scores_and_the_same_seed_repeats_them(tiny_model, tokenizer, items):
    model = tiny_model("llama")
    intact = score(model, tokenizer, items, progress=False)
    runs = {}
    for seed in (0, 0, 1):
        with inject_noise(model, [2], variance=0.1, seed=seed):
            runs.setdefault(seed, []).append(score(model, tokenizer, items, progress=False))
    assert not np.allclose(runs[0][0], intact)
    np.testing.assert_array_equal(runs[0][0], runs[0][1])
    assert not np.array_equal(runs[0][0], runs[1][0])


def test_noise_reaches_a_kept_layer_inside_a_layer_view(tiny_model, tokenizer, items):
    model = tiny_model("gemma3")
    kept = [0, 1, 3, 4]
    pruned = score(model, tokenizer, items[:4], layers=kept, progress=False)
    with inject_noise(model, [2], variance=1.0, seed=0):  # layer 2 is removed: no effect
        np.testing.assert_array_equal(score(model, tokenizer, items[:4], layers=kept, progress=False), pruned)
    with inject_noise(model, [3], variance=1.0, seed=0):
        assert not np.allclose(score(model, tokenizer, items[:4], layers=kept, progress=False), pruned)


def test_hooks_are_removed_on_exit_and_on_exception(tiny_model):
    model = tiny_model("qwen2")
    n_before = hooks_on(model)
    with inject_noise(model, [0, 1], variance=0.02, seed=0):
        assert hooks_on(model) == n_before + 2
    assert hooks_on(model) == n_before
    with pytest.raises(RuntimeError, match="boom"):
        with inject_noise(model, [0], variance=0.02, seed=0):
            raise RuntimeError("boom")
    assert hooks_on(model) == n_before
    with pytest.raises(IndexError):
        with inject_noise(model, [99], variance=0.02, seed=0):
            pass
    assert hooks_on(model) == n_before


def test_noise_has_the_stated_scale():
    """Added noise per coordinate has standard deviation sqrt(variance) * sigma(h) of each token."""
    hidden = torch.randn(4, 2000) * torch.tensor([[0.5], [1.0], [2.0], [8.0]])
    generator = torch.Generator().manual_seed(0)
    added = add_noise(hidden, noise_scale(0.1), generator) - hidden  # [4, 2000]
    ratio = added.std(dim=-1) / hidden.std(dim=-1)
    np.testing.assert_allclose(ratio.numpy(), np.sqrt(0.1), rtol=0.06)
    assert noise_scale(0.02) == pytest.approx(0.1414, abs=1e-4)
    with pytest.raises(ValueError):
        noise_scale(-0.1)
