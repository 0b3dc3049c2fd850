"""Pruned models as real smaller models, and brief fine-tuning that lowers the training loss."""

import numpy as np
import pytest
import torch
from layercollapse.controls.finetune import finetune_pruned, materialize_pruned
from layercollapse.model.layers import n_layers
from layercollapse.readout.scoring import score


@pytest.mark.parametrize("arch", ["llama", "gemma3"])
@pytest.mark.parametrize("format", ["letter", "cloze"])
def test_materialized_model_scores_like_the_layer_view(tiny_model, tokenizer, items, arch, format):
    model, kept = tiny_model(arch), [0, 3, 4]
    pruned = materialize_pruned(model, kept)
    expected = score(model, tokenizer, items[:6], format, layers=kept, task="arc_easy", progress=False)
    np.testing.assert_allclose(score(pruned, tokenizer, items[:6], format, task="arc_easy", progress=False), expected,
                               atol=1e-5)
    assert n_layers(pruned) == 3 and len(model.model.layers) > 3 and pruned.layercollapse_kept_layers == (0, 3, 4)
    assert [layer.self_attn.layer_idx for layer in pruned.model.layers] == [0, 1, 2]
    if arch == "gemma3":
        assert pruned.config.layer_types == [model.config.layer_types[i] for i in kept]


def test_materialized_model_owns_its_weights(tiny_model):
    model = tiny_model("llama")
    pruned = materialize_pruned(model, [1, 2])
    assert pruned.model.layers[0].mlp.up_proj.weight.data_ptr() != model.model.layers[1].mlp.up_proj.weight.data_ptr()
    assert torch.equal(pruned.model.layers[0].mlp.up_proj.weight, model.model.layers[1].mlp.up_proj.weight)
    assert model.config.num_hidden_layers == len(model.model.layers) == n_layers(model) > 2


@pytest.mark.parametrize("method,lr", [("lora", 1e-2), ("full", 1e-3)])
def test_a_few_steps_lower_the_training_loss_and_leave_the_original_alone(tiny_model, tokenizer, items, method, lr):
    model = tiny_model("llama")
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    intact = score(model, tokenizer, items[:8], layers=[0, 1, 2], progress=False)
    result = finetune_pruned(model, tokenizer, [0, 1, 2], items[:8], task="arc_easy", steps=8, lr=lr,
                             method=method, batch_size=8)
    assert result.losses[-1] < result.losses[0]
    assert type(result.model) is type(model) and result.kept_layers == (0, 1, 2)
    assert not np.allclose(score(result.model, tokenizer, items[:8], progress=False), intact)
    for name, parameter in model.named_parameters():
        assert torch.equal(parameter, before[name]) and parameter.grad is None


def test_lora_trains_only_q_and_v_and_is_seeded(tiny_model, tokenizer, items):
    model = tiny_model("qwen2")
    runs = [finetune_pruned(model, tokenizer, [0, n_layers(model) - 1], items[:4], format="cloze", task="arc_easy", steps=2, lr=1e-2,
                            batch_size=4, seed=0) for _ in range(2)]
    np.testing.assert_array_equal(runs[0].losses, runs[1].losses)
    changed = {name.split(".")[-2] for name, p in runs[0].model.named_parameters()
               if not torch.equal(p, materialize_pruned(model, runs[0].kept_layers).state_dict()[name])}
    assert changed == {"q_proj", "v_proj"}
    with pytest.raises(ValueError, match="Unknown fine-tuning method"):
        finetune_pruned(model, tokenizer, [0], items[:2], method="qlora")
