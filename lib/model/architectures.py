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
            "Add the class to layercollapse.model.architectures.SUPPORTED_ARCHITECTURES if it is a pre-norm decoder "
            "with model.model.layers / model.model.norm / model.lm_head."
        )


def backbone(model: nn.Module) -> nn.Module:
    """The decoder backbone (embeddings, decoder layers, final norm), ``model.model``."""
    check_supported(model)
    return model.model


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The decoder layers currently in the model, in order."""
    return backbone(model).layers


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


READOUTS = ("float32", "model")
_READOUT_ATTR = "layercollapse_readout"


def set_readout(model: nn.Module, readout: str) -> nn.Module:
    """Choose the precision of everything after the last hidden state; returns the model.

    ``"float32"``: the final norm's input is upcast (the norm, and so the backbone's output, is
    float32) and the unembedding runs in float32, so option log-probabilities keep their
    resolution in a bf16 model (bf16 logits near 16 are spaced 0.06-0.125 apart, the size of the
    gaps greedy pruning decides on). ``"model"``: the model's own dtype throughout (how results
    were computed before the float32 readout existed). The backbone stays in the model's dtype
    either way; for a float32 model the two are the same.
    """
    if readout not in READOUTS:
        raise ValueError(f"readout must be one of {READOUTS}, not {readout!r}")
    handles = getattr(model, "_layercollapse_readout_hooks", None)
    if readout == "float32" and handles is None:
        # the norm computes in float32; the model's own lm_head (model(...), generate) gets its dtype back
        model._layercollapse_readout_hooks = (final_norm(model).register_forward_pre_hook(_upcast_input),
                                              unembedding(model).register_forward_pre_hook(_to_weight_dtype))
    elif readout == "model" and handles is not None:
        for handle in handles:
            handle.remove()
        del model._layercollapse_readout_hooks
    setattr(model, _READOUT_ATTR, readout)
    return model


def readout_of(model: nn.Module) -> str:
    """``"float32"`` or ``"model"`` (see :func:`set_readout`); models not set read out in their own dtype."""
    return getattr(model, _READOUT_ATTR, "model")


def readout_spec(readout: str, dtype: str) -> dict[str, str]:
    """The spec entry of a readout choice: ``{"readout": "float32"}`` when it changes the numbers (a
    model dtype other than float32), else nothing, so that results computed before the choice
    existed (model-dtype readout) and float32 results keep their keys."""
    return {"readout": readout} if readout == "float32" and dtype.removeprefix("torch.") != "float32" else {}


def _upcast_input(module: nn.Module, args: tuple) -> tuple:
    return (args[0].float(), *args[1:])


def _to_weight_dtype(module: nn.Module, args: tuple) -> tuple:
    return (args[0].to(module.weight.dtype), *args[1:])


def _unembedding_weight(layer: nn.Linear, dtype: torch.dtype) -> torch.Tensor:
    """``layer.weight`` in ``dtype``; a converted copy is cached while the weight is unchanged
    (differentiable, uncached, when gradients flow to it).

    The copy is made outside ``torch.inference_mode`` even when the first call is inside it: an inference
    tensor cannot be saved for backward, and a later call with autograd on (a tuned lens training through
    the frozen unembedding) must be able to use the same cached copy."""
    weight = layer.weight
    if weight.dtype == dtype:
        return weight
    if weight.requires_grad and torch.is_grad_enabled():
        return weight.to(dtype)
    stamp = (weight.data_ptr(), weight._version, dtype)
    cached = getattr(layer, "_layercollapse_weight_cache", None)
    if cached is None or cached[0] != stamp:
        with torch.inference_mode(False), torch.no_grad():
            cached = (stamp, weight.detach().to(dtype))
        layer._layercollapse_weight_cache = cached
    return cached[1]


def hidden_to_logits(model: nn.Module, hidden: torch.Tensor, *, normed: bool = False) -> torch.Tensor:
    """Read hidden states out through the final norm and unembedding (the logit lens).

    Args:
        hidden: [..., d_model] residual-stream states (the model's dtype; float32 when the backbone's
            output comes from a float32 readout, :func:`set_readout`).
        normed: True when the final norm was already applied (the backbone's output).
    Returns:
        float32 [..., vocab] logits, soft-capped where the architecture does so; computed in float32
        after the last hidden state under a float32 readout, else in the model's dtype.
    """
    if not normed:
        hidden = final_norm(model)(hidden)
    head = unembedding(model)
    if hidden.dtype == head.weight.dtype:
        logits = head(hidden).float()
    else:
        logits = nn.functional.linear(hidden, _unembedding_weight(head, hidden.dtype),
                                      None if head.bias is None else head.bias.to(hidden.dtype)).float()
    cap = logit_softcap(model)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return logits
