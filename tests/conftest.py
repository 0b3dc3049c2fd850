"""Shared fixtures: the embedded SmolLM2 tokenizer, tiny random models of each architecture, a few items.

Nothing is downloaded: the tokenizer comes from the embedded GGUF file, the models
are randomly initialised from small configs (fp32, hidden size 64), and the items
come from the offline ARC-Easy copy.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import pytest
import torch

TINY_VOCAB = 49152  # SmolLM2's vocabulary, so its tokenizer drives the tiny models
TINY_HIDDEN = 64
TINY_LAYERS = 5
#: The tiny random model of each architecture the library declares (``SUPPORTED_ARCHITECTURES``): class name -> the
#: ``arch`` name of :func:`build_tiny_model` (``tests/project/test_architecture.py`` fails when a declared class has none).
TINY_ARCHITECTURE_OF = {"LlamaForCausalLM": "llama", "Qwen2ForCausalLM": "qwen2", "Qwen3ForCausalLM": "qwen3",
                        "MistralForCausalLM": "mistral", "Gemma3ForCausalLM": "gemma3"}
TINY_ARCHITECTURES = tuple(TINY_ARCHITECTURE_OF.values())


@functools.cache
def load_tiny_tokenizer():
    """SmolLM2's tokenizer (from the embedded GGUF, ~20 s: loaded once per process), left-padded with a pad token."""
    from layercollapse.model import embedded
    from layercollapse.model.loading import prepare_tokenizer_
    from transformers import AutoTokenizer

    path = embedded.gguf_path(embedded.SMOLLM2)
    loaded = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    prepare_tokenizer_(loaded)
    return loaded


@pytest.fixture(scope="session")
def tokenizer():
    """SmolLM2's tokenizer (from the embedded GGUF), left-padded with a pad token."""
    return load_tiny_tokenizer()


def build_tiny_model(arch: str, n_layers: int = TINY_LAYERS, seed: int = 0) -> torch.nn.Module:
    """A randomly initialised fp32 causal LM of architecture ``arch`` (one of :data:`TINY_ARCHITECTURES`)."""
    from transformers import (
        Gemma3ForCausalLM,
        Gemma3TextConfig,
        LlamaConfig,
        LlamaForCausalLM,
        MistralConfig,
        MistralForCausalLM,
        Qwen2Config,
        Qwen2ForCausalLM,
        Qwen3Config,
        Qwen3ForCausalLM,
    )

    shared = dict(vocab_size=TINY_VOCAB, hidden_size=TINY_HIDDEN, intermediate_size=128,
                  num_hidden_layers=n_layers, num_attention_heads=4, num_key_value_heads=2,
                  max_position_embeddings=512)
    if arch == "llama":
        config, cls = LlamaConfig(**shared), LlamaForCausalLM
    elif arch == "mistral":
        config, cls = MistralConfig(**shared), MistralForCausalLM
    elif arch == "qwen2":
        config, cls = Qwen2Config(**shared), Qwen2ForCausalLM
    elif arch == "qwen3":
        # Qwen3 normalises queries and keys per head (q_norm, k_norm); its default head_dim is 128, not hidden / heads.
        config, cls = Qwen3Config(**shared, head_dim=TINY_HIDDEN // 4), Qwen3ForCausalLM
    elif arch == "gemma3":
        # Alternating sliding / global attention, with a window shorter than the prompts.
        config = Gemma3TextConfig(**shared, head_dim=16, sliding_window=16,
                                  layer_types=["sliding_attention", "full_attention"] * (n_layers // 2)
                                  + ["sliding_attention"] * (n_layers % 2))
        cls = Gemma3ForCausalLM
    else:
        raise ValueError(f"unknown tiny architecture {arch!r}; use one of {TINY_ARCHITECTURES}")
    torch.manual_seed(seed)
    model = cls(config).to(torch.float32).eval()
    model.layercollapse_name = f"tiny-{arch}-{n_layers}-seed{seed}"
    return model


@pytest.fixture(scope="session")
def tiny_model() -> Callable[..., torch.nn.Module]:
    """Factory ``tiny_model(arch, n_layers=5, seed=0)``; models are cached per argument tuple (do not modify them)."""
    built: dict[tuple, torch.nn.Module] = {}

    def make(arch: str, n_layers: int = TINY_LAYERS, seed: int = 0) -> torch.nn.Module:
        key = (arch, n_layers, seed)
        if key not in built:
            built[key] = build_tiny_model(arch, n_layers, seed)
        return built[key]

    return make


@pytest.fixture()
def tiny_folder(tiny_model, tokenizer, tmp_path):
    """A model folder (``save_pretrained``) holding the tiny Llama and SmolLM2's tokenizer, for the command line."""
    folder = tmp_path / "tiny"
    tiny_model("llama").save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def items():
    """Twelve ARC-Easy validation items: a seeded subsample of ten 4-option items plus the 3- and 5-option ones."""
    from layercollapse.data.tasks import load_task, subsample

    pool = load_task("arc_easy").items
    odd = [next(item for item in pool if len(item.options) == n) for n in (3, 5)]
    return subsample([item for item in pool if item not in odd], 10, seed=0) + tuple(odd)


def _missing(marker: str) -> str | None:
    """Why a test with ``marker`` cannot run here (None: it can)."""
    import importlib.util
    import shutil

    if marker == "quarto" and shutil.which("quarto") is None:
        return "no quarto on PATH (https://quarto.org/docs/get-started/); its Quarto-free twin runs instead"
    if marker == "browser":
        from browser import skip_reason

        return skip_reason()
    if marker == "gpu":
        import torch

        return None if torch.cuda.is_available() else "no CUDA GPU"
    if marker == "distributed" and importlib.util.find_spec("submitit") is None:
        return "submitit is not installed: pip install -e '.[distributed]'"
    return None


def pytest_collection_modifyitems(config, items) -> None:
    """A test marked ``quarto``, ``browser``, ``gpu`` or ``distributed`` skips, saying why, where that is missing:
    ``-m quarto`` selects everything that needs Quarto, ``-m "not slow"`` the unit suite."""
    reasons: dict[str, str | None] = {}
    for item in items:
        for marker in ("quarto", "browser", "gpu", "distributed"):
            if item.get_closest_marker(marker) is not None:
                reason = reasons.setdefault(marker, _missing(marker))
                if reason:
                    item.add_marker(pytest.mark.skip(reason=reason))


def store_content(root) -> dict:
    """(kind, key) -> (spec, table records, arrays as lists) of the results store at ``root``, without timestamps:
    two stores computed the same way compare equal."""
    import json

    import numpy as np
    from layercollapse.storage.store import Store

    store, content = Store(root), {}
    for kind in store.kinds():
        for sidecar in store.sidecars(kind):
            result = store.load_key(kind, sidecar["key"])
            table = result.table.astype(object).where(result.table.notna(), None)  # NaN == NaN for the comparison
            content[kind, sidecar["key"]] = (json.dumps(result.spec, sort_keys=True), table.to_dict("list"),
                                             {name: np.nan_to_num(array, nan=1e300).tolist() if array.dtype.kind == "f"
                                              else array.tolist() for name, array in result.arrays.items()})
    return content
