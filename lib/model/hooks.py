"""Run decoder layers with a function on their outputs: the one place that hooks a layer.

Hugging Face decoder layers take the residual stream as their first positional argument (or as
``hidden_states=``) and return it alone or as the first element of a tuple. Only this module
knows that. Every analysis that reads or changes the residual stream between layers (the
logit-lens capture, the pruning engine's prefix cache and layer statistics, noise injection)
is a small function handed to :func:`hook_layers`, whose hooks exist only inside its ``with``
block (TransformerLens's ``run_with_hooks``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch
from layercollapse.model.architectures import final_norm
from layercollapse.model.layers import active_layers, intact_layers
from torch import nn

#: ``on_output(layer, hidden_in, hidden_out)``: [B, T, d] each, ``layer`` the original index; a tensor it returns
#: replaces the layer's output, None leaves it.
OnOutput = Callable[[int, torch.Tensor, torch.Tensor], "torch.Tensor | None"]


def layer_input(args: tuple, kwargs: dict) -> torch.Tensor:
    """The residual stream a decoder layer was called with: [B, T, d]."""
    return args[0] if args else kwargs["hidden_states"]


def layer_output(output) -> torch.Tensor:
    """The residual stream a decoder layer returned: [B, T, d]."""
    return output[0] if isinstance(output, tuple) else output


def with_layer_output(output, hidden: torch.Tensor):
    """A decoder layer's ``output`` with its residual stream replaced by ``hidden``."""
    return (hidden, *output[1:]) if isinstance(output, tuple) else hidden


@contextmanager
def hook_layers(model: nn.Module, on_output: OnOutput | None = None, layers: Sequence[int] | None = None, *,
                on_embeddings: Callable[[torch.Tensor], None] | None = None) -> Iterator[nn.Module]:
    """Inside the block, call ``on_output`` after each of ``layers`` runs (see :data:`OnOutput`).

    Args:
        layers: original indices of the hooked layers (None: the layers active on entry, e.g. a
            ``keep_layers`` view's). The hooks sit on the layer modules themselves, so they fire whether
            or not a layer view is entered inside or outside the block.
        on_embeddings: called with the residual stream [B, T, d] entering the first of ``layers`` (the
            embeddings, when that is the network's first layer).
    Yields:
        the same model; every hook is removed on exit, also after an error.
    """
    modules = intact_layers(model)
    layers = active_layers(model) if layers is None else list(layers)
    handles = []

    def hook(layer: int):
        def call(module, args, kwargs, output):
            replaced = on_output(layer, layer_input(args, kwargs), layer_output(output))
            return None if replaced is None else with_layer_output(output, replaced)

        return call

    try:
        if on_embeddings is not None and layers:
            handles.append(modules[layers[0]].register_forward_pre_hook(
                lambda module, args, kwargs: on_embeddings(layer_input(args, kwargs)), with_kwargs=True))
        if on_output is not None:
            for layer in layers:
                handles.append(modules[layer].register_forward_hook(hook(layer), with_kwargs=True))
        yield model
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def hook_final_norm(model: nn.Module, on_input: Callable[[torch.Tensor], None]) -> Iterator[nn.Module]:
    """Inside the block, call ``on_input`` with the residual stream [B, T, d] entering the final norm: the output of
    the network's last running layer (or, when a prefix run recomputes no layer, the remembered state it starts
    from), before the norm."""
    handle = final_norm(model).register_forward_pre_hook(lambda module, args: on_input(args[0]))
    try:
        yield model
    finally:
        handle.remove()
