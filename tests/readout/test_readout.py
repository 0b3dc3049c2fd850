"""The float32 readout: everything after the last hidden state in float32, the backbone in bf16."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import TINY_ARCHITECTURES, build_tiny_model
from layercollapse.data.tasks import load_task, split_calibration
from layercollapse.model.architectures import (
    final_norm,
    hidden_to_logits,
    readout_of,
    readout_spec,
    set_readout,
    unembedding,
)
from layercollapse.pruning.trace import trace_spec
from layercollapse.readout.scoring import score


def bf16_model(arch: str = "llama", readout: str = "float32") -> torch.nn.Module:
    return set_readout(build_tiny_model(arch).to(torch.bfloat16), readout)


def reference_logits(model: torch.nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """Final norm and unembedding written out in float32 (RMSNorm; Gemma scales by 1 + weight)."""
    norm = final_norm(model)
    x = hidden.float()
    eps = norm.eps if hasattr(norm, "eps") else norm.variance_epsilon
    x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    weight = norm.weight.float()
    x = x * (1 + weight) if "Gemma" in type(model).__name__ else x * weight
    logits = x @ unembedding(model).weight.float().T
    cap = getattr(model.config, "final_logit_softcapping", None)
    return torch.tanh(logits / cap) * cap if cap else logits


@pytest.mark.parametrize("arch", TINY_ARCHITECTURES)
def test_float32_readout_equals_the_norm_and_unembedding_written_out_in_float32(arch):
    model = bf16_model(arch)
    hidden = (torch.randn(6, model.config.hidden_size, generator=torch.Generator().manual_seed(0)) * 3).bfloat16()
    with torch.no_grad():
        fp32 = hidden_to_logits(model, hidden)
        set_readout(model, "model")
        in_model_dtype = hidden_to_logits(model, hidden)
        expected = reference_logits(model, hidden)
    torch.testing.assert_close(fp32, expected, rtol=1e-5, atol=1e-5)
    assert (in_model_dtype - expected).abs().max() > 10 * (fp32 - expected).abs().max()  # bf16 head is coarser


def test_a_float32_readout_first_used_in_inference_mode_can_be_trained_through_afterwards():
    # reproduce runs readouts (inference mode) before the tuned lens trains through the frozen unembedding; the cached
    # float32 copy of the bf16 weight must not be an inference tensor ("cannot be saved for backward")
    model = bf16_model().requires_grad_(False)  # frozen, as the tuned lens trains only its translators
    hidden = torch.randn(3, model.config.hidden_size, generator=torch.Generator().manual_seed(1))  # float32 readout
    with torch.inference_mode():
        first = hidden_to_logits(model, hidden)
    translator = torch.zeros(model.config.hidden_size, requires_grad=True)
    logits = hidden_to_logits(model, hidden + translator)
    logits.logsumexp(-1).sum().backward()
    assert translator.grad is not None and torch.isfinite(translator.grad).all()
    torch.testing.assert_close(logits.detach(), first)


def test_the_model_s_own_forward_still_works_and_model_readout_removes_every_hook():
    model = bf16_model()
    ids = torch.tensor([[1, 5, 9, 3]])
    with torch.no_grad():
        logits = model(input_ids=ids).logits
    assert logits.dtype == torch.bfloat16 and torch.isfinite(logits).all()
    assert readout_of(model) == "float32"
    set_readout(model, "model")
    assert readout_of(model) == "model" and not final_norm(model)._forward_pre_hooks
    assert not unembedding(model)._forward_pre_hooks
    with pytest.raises(ValueError, match=r"readout must be one of \('float32', 'model'\), not 'fp64'"):
        set_readout(model, "fp64")


def test_cached_float32_unembedding_follows_weight_updates_and_passes_gradients():
    model = bf16_model()
    hidden = torch.randn(2, model.config.hidden_size).bfloat16()
    with torch.no_grad():
        before = hidden_to_logits(model, hidden)
        unembedding(model).weight.mul_(2)  # in place: the cached float32 copy must not be served
        after = hidden_to_logits(model, hidden)
    torch.testing.assert_close(after, reference_logits(model, hidden), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(before, after)
    hidden_to_logits(model, hidden).sum().backward()
    assert unembedding(model).weight.grad is not None


def test_float32_readout_brings_bf16_scores_closer_to_the_float32_model(tokenizer, items):
    reference = score(build_tiny_model("llama"), tokenizer, items, "letter", progress=False)
    present = np.isfinite(reference)  # the 3-option item's fourth and fifth entries are -inf
    distance = {readout: np.abs(score(bf16_model(readout=readout), tokenizer, items, "letter", progress=False)[present]
                                - reference[present]).mean() for readout in ("model", "float32")}
    assert distance["float32"] < distance["model"], distance


def test_readout_enters_the_spec_only_where_it_changes_the_numbers(tokenizer, items):
    assert readout_spec("float32", "bfloat16") == {"readout": "float32"}
    assert readout_spec("model", "bfloat16") == readout_spec("float32", "float32") == {}
    spec = {"criterion": None, "seed": None, "layers": None, "n_remove": 1, "format": "letter", "task": None,
            "split": None}
    assert trace_spec(bf16_model(), "reverse", items, (), **spec)["readout"] == "float32"
    assert "readout" not in trace_spec(bf16_model(readout="model"), "reverse", items, (), **spec)
    assert "readout" not in trace_spec(set_readout(build_tiny_model("llama"), "float32"), "reverse", items, (), **spec)


def test_the_committed_default_profile_keeps_its_model_dtype_readout_and_others_use_float32():
    from layercollapse.study.experiments import Experiments

    assert Experiments("default").readout_spec() == {}  # the committed results' keys are unchanged
    assert Experiments("paper").readout_spec() == {"readout": "float32"}


def test_bf16_greedy_order_is_the_same_at_three_token_budgets_and_scores_agree_within_tolerance(tokenizer):
    """bf16 scores move with the batch layout (README, numerics); on a tiny model they stay within 0.01 nats
    (measured: 0.002 with the float32 readout, 0.004 without) and the greedy order does not move."""
    from layercollapse.pruning.engine import prune

    model = set_readout(build_tiny_model("llama", n_layers=6).to(torch.bfloat16), "float32")
    calibration, evaluation = split_calibration(load_task("arc_easy").items, 8, 12, 0)
    traces = [prune(model, tokenizer, evaluation, "iterative", calibration=calibration, task="arc_easy",
                    token_budget=budget, progress=False) for budget in (128, 1024, 8192)]
    assert len({tuple(trace.removal_order()) for trace in traces}) == 1
    present = np.isfinite(traces[0].scores)
    for trace in traces[1:]:
        assert np.abs(trace.scores[present] - traces[0].scores[present]).max() <= 0.01
