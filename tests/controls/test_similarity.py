"""Linear CKA and cosine against their definitions; hidden states at the scoring's read positions."""

import numpy as np
import pytest
import torch
from layercollapse.controls.similarity import (
    FinalStates,
    hidden_states_at_read_positions,
    linear_cka,
    mean_cosine,
    representation_similarity,
)
from layercollapse.model.architectures import hidden_to_logits
from layercollapse.model.layers import n_layers
from layercollapse.readout.lens import layerwise_scores
from layercollapse.readout.scoring import letter_token_ids


def naive_cka(x, y):
    """HSIC with an explicit centring matrix H = I - 11^T/n on linear kernels."""
    n = len(x)
    h = np.eye(n) - np.ones((n, n)) / n
    hsic = lambda k, l: np.trace(k @ h @ l @ h) / (n - 1) ** 2  # noqa: E731
    k, l = x @ x.T, y @ y.T
    return hsic(k, l) / np.sqrt(hsic(k, k) * hsic(l, l))


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_cka_of_a_matrix_with_itself_is_one(rng):
    x = rng.normal(size=(50, 8))
    assert linear_cka(x, x) == pytest.approx(1.0)


def test_cka_is_invariant_to_orthogonal_transforms_isotropic_scaling_and_shifts(rng):
    x, y = rng.normal(size=(40, 6)), rng.normal(size=(40, 10))
    q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    reference = linear_cka(x, y)
    assert linear_cka(3.5 * x @ q + 2.0, y) == pytest.approx(reference)
    assert linear_cka(x @ q, x) == pytest.approx(1.0)


def test_cka_matches_the_naive_hsic_formula(rng):
    x = rng.normal(size=(30, 5))
    y = x @ rng.normal(size=(5, 7)) + rng.normal(size=(30, 7))
    assert linear_cka(x, y) == pytest.approx(naive_cka(x, y), rel=1e-10)


def test_mean_cosine_against_hand_values():
    x = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 2.0], [0.0, 0.0]])
    y = np.array([[2.0, 0.0], [-1.0, -1.0], [1.0, 0.0], [1.0, 1.0]])
    assert mean_cosine(x, y) == pytest.approx((1.0 - 1.0 + 0.0 + 0.0) / 4)
    with pytest.raises(ValueError):
        mean_cosine(x, y[:, :1])


@pytest.mark.parametrize("format", ["letter", "cloze"])
def test_read_states_reproduce_the_logit_lens_scores(tiny_model, tokenizer, items, format):
    model = tiny_model("llama")
    kept = [0, 2, 3, n_layers(model) - 1]
    states = hidden_states_at_read_positions(model, tokenizer, items[:5], format, layers=kept, task="arc_easy")
    n_positions = 5 if format == "letter" else None
    assert states.shape[:1] == (len(kept) + 1,) and states.dtype == np.float32
    if n_positions is not None:
        assert states.shape[1] == n_positions
        letters = letter_token_ids(tokenizer, max(len(item.options) for item in items[:5]))
        with torch.inference_mode():
            logprobs = torch.log_softmax(hidden_to_logits(model, torch.from_numpy(states)), dim=-1)[..., letters]
        lens = layerwise_scores(model, tokenizer, items[:5], layers=kept, task="arc_easy", progress=False)
        finite = np.isfinite(lens)
        np.testing.assert_allclose(logprobs.numpy()[finite], lens[finite], atol=1e-5)
    else:
        assert states.shape[1] > sum(len(item.options) for item in items[:5])


def test_similarity_of_intact_with_itself_is_one_and_lower_after_pruning(tiny_model, tokenizer, items):
    model = tiny_model("qwen2")
    intact = hidden_states_at_read_positions(model, tokenizer, items, "letter")
    pruned = hidden_states_at_read_positions(model, tokenizer, items, "letter", layers=[0, 1, n_layers(model) - 1])
    assert representation_similarity(intact, intact) == pytest.approx({"cka": 1.0, "cosine": 1.0})
    similarity = representation_similarity(intact, pruned)
    assert similarity["cka"] < 1.0 and similarity["cosine"] < 1.0
    assert representation_similarity(intact[-1], pruned[-1]) == similarity


@pytest.mark.parametrize("format", ["letter", "cloze"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_final_states_along_nested_networks_equal_a_run_from_scratch_bit_for_bit(tiny_model, tokenizer, items, format,
                                                                                dtype):
    import copy

    model = copy.deepcopy(tiny_model("llama")).to(dtype)
    last = n_layers(model) - 1
    # nested as along a trace: the last layer first (no layer recomputed), then a middle one, then the first;
    # the intact network twice (served, not run again)
    networks = [list(range(last + 1)), list(range(last + 1)), list(range(last)), [0, 1, 3], [1, 3], [3]]
    states = FinalStates(model, tokenizer, items[:5], format, task="arc_easy")
    for kept in networks:
        expected = hidden_states_at_read_positions(model, tokenizer, items[:5], format, layers=kept, task="arc_easy")[-1]
        np.testing.assert_array_equal(states.along(kept), expected)
    # only the layers after each step's dropped layer ran: 5 (intact), 0 (served), 0 (dropped the last), 1, 2, 1;
    # from scratch it would be 5 + 5 + 4 + 3 + 2 + 1
    assert states.runner.n_layer_runs == 9
