"""The one place that knows where a causal LM keeps its parts.

Every other module reaches the decoder stack, the final norm and the
unembedding through these functions, so supporting a new architecture means
adding one entry to :data:`SUPPORTED_ARCHITECTURES`.
"""

from __future__ import annotations

import torch
from torch import nn

#: Pre-norm decoder-only architectures whose backbone is ``model.model`` with
#: ``layers``, ``norm`` and ``embed_tokens``, and whose unembedding is ``lm_head``.
SUPPORTED_ARCHITECTURES = (
    "LlamaForCausalLM",
    "MistralForCausalLM",
    "Qwen2ForCausalLM",
    "Qwen3ForCausalLM",
    "Gemma3ForCausalLM",
)


class UnsupportedArchitecture(TypeError):
    """The model's architecture is not one this library knows how to open up."""


def check_supported(model: nn.Module) -> None:
    """Raise :class:`UnsupportedArchitecture` unless the model's class is supported."""
    name = type(model).__name__
    if name not in SUPPORTED_ARCHITECTURES:
        raise UnsupportedArchitecture(
            f"{name} is not supported: layer views and lenses know {', '.join(SUPPORTED_ARCHITECTURES)}. "
            "Add the class to layercollapse.architectures.SUPPORTED_ARCHITECTURES if it is a pre-norm decoder "
            "with model.model.layers / model.model.norm / model.lm_head."
        )


def backbone(model: nn.Module) -> nn.Module:
    """The decoder backbone (embeddings, decoder layers, final norm), ``model.model``."""
    check_supported(model)
    return model.model


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The decoder layers currently in the model, in order."""
    return backbone(model).layers


def n_layers(model: nn.Module) -> int:
    """Number of decoder layers of the intact model (ignores an active layer view)."""
    original = getattr(model, "_layercollapse_original_layers", None)
    return len(original) if original is not None else len(decoder_layers(model))


def final_norm(model: nn.Module) -> nn.Module:
    """The norm applied after the last decoder layer."""
    return backbone(model).norm


def unembedding(model: nn.Module) -> nn.Linear:
    """The output projection to vocabulary logits (``lm_head``)."""
    check_supported(model)
    return model.lm_head


def logit_softcap(model: nn.Module) -> float | None:
    """Gemma-style final logit soft-capping value, or None."""
    return getattr(model.config, "final_logit_softcapping", None)


def hidden_to_logits(model: nn.Module, hidden: torch.Tensor, *, normed: bool = False) -> torch.Tensor:
    """Read hidden states out through the final norm and unembedding (the logit lens).

    Args:
        hidden: [..., d_model] residual-stream states, in the model's dtype.
        normed: True when the final norm was already applied (the backbone's output).
    Returns:
        float32 [..., vocab] logits, soft-capped where the architecture does so.
    """
    if not normed:
        hidden = final_norm(model)(hidden)
    logits = unembedding(model)(hidden).float()
    cap = logit_softcap(model)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return logits
