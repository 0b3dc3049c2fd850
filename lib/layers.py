"""Layer views: run a model with a subset of its decoder layers, sharing weights.

Layer indices are always those of the intact model. A view swaps the backbone's
``ModuleList`` for one holding the kept layers (the same module objects, no
copies), renumbers each attention's ``layer_idx`` for the KV cache, shrinks
``config.num_hidden_layers`` and ``config.layer_types`` (Gemma-3's sliding /
global pattern travels with the layers), and restores everything on exit.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager

from torch import nn

from .architectures import backbone, n_layers


def validate_layer_indices(layers: Iterable[int], n_total: int, what: str = "layer") -> list[int]:
    """Check indices are ints in [0, n_total) without duplicates; return them sorted.

    Raises:
        IndexError: an index is out of range (names it and the valid range).
        ValueError: an index repeats or is not an integer.
    """
    layers = list(layers)
    for layer in layers:
        if isinstance(layer, bool) or not isinstance(layer, (int,)) and not hasattr(layer, "__index__"):
            raise ValueError(f"{what} index {layer!r} is not an integer")
    layers = [int(layer) for layer in layers]
    bad = [layer for layer in layers if not 0 <= layer < n_total]
    if bad:
        raise IndexError(f"{what} index {bad[0]} is out of range: this model has layers 0..{n_total - 1}")
    if len(set(layers)) != len(layers):
        repeated = sorted({layer for layer in layers if layers.count(layer) > 1})
        raise ValueError(f"{what} indices repeat: {repeated}")
    return sorted(layers)


def _attention_modules(layer: nn.Module) -> list[nn.Module]:
    """The submodules of a decoder layer that carry a ``layer_idx``."""
    return [module for module in layer.modules() if hasattr(module, "layer_idx")]


@contextmanager
def keep_layers(model: nn.Module, kept: Sequence[int]) -> Iterator[nn.Module]:
    """Run ``model`` with only the decoder layers ``kept`` (original indices, any order given).

    Yields the same model object; on exit the intact model is restored, also
    after an exception. Views do not nest.
    """
    if getattr(model, "_layercollapse_original_layers", None) is not None:
        raise RuntimeError("A layer view is already active on this model; views do not nest.")
    decoder = backbone(model)
    total = len(decoder.layers)
    kept = validate_layer_indices(kept, total, "kept layer")
    config = decoder.config
    original_layers = decoder.layers
    original_count = config.num_hidden_layers
    original_types = getattr(config, "layer_types", None)
    original_idx = {id(m): m.layer_idx for layer in original_layers for m in _attention_modules(layer)}
    try:
        model._layercollapse_original_layers = original_layers
        decoder.layers = nn.ModuleList([original_layers[i] for i in kept])
        config.num_hidden_layers = len(kept)
        if original_types is not None:
            config.layer_types = [original_types[i] for i in kept]
        for position, layer in enumerate(decoder.layers):
            for module in _attention_modules(layer):
                module.layer_idx = position
        yield model
    finally:
        decoder.layers = original_layers
        config.num_hidden_layers = original_count
        if original_types is not None:
            config.layer_types = original_types
        for layer in original_layers:
            for module in _attention_modules(layer):
                module.layer_idx = original_idx[id(module)]
        model._layercollapse_original_layers = None


@contextmanager
def drop_layers(model: nn.Module, layers: Iterable[int]) -> Iterator[nn.Module]:
    """Run ``model`` without the decoder layers ``layers`` (original indices).

    ``drop_layers(model, [])`` is the intact model. Out-of-range or repeated
    indices raise before the model is touched.
    """
    total = n_layers(model)
    removed = set(validate_layer_indices(layers, total, "removed layer"))
    with keep_layers(model, [i for i in range(total) if i not in removed]) as view:
        yield view
