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

from layercollapse.model.architectures import backbone
from torch import nn


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


#: What ``keep_layers`` keeps on a model while a view is open: the intact layer list, the kept original indices,
#: the intact ``config.layer_types``.
VIEW_STATE = ("_layercollapse_original_layers", "_layercollapse_kept", "_layercollapse_intact_types")


def _attention_modules(layer: nn.Module) -> list[nn.Module]:
    """The submodules of a decoder layer that carry a ``layer_idx``."""
    return [module for module in layer.modules() if hasattr(module, "layer_idx")]


def intact_layers(model: nn.Module) -> nn.ModuleList:
    """The decoder layers of the intact model, indexed by original index, also inside a layer view."""
    original = getattr(model, "_layercollapse_original_layers", None)
    return original if original is not None else backbone(model).layers


def n_layers(model: nn.Module) -> int:
    """Number of decoder layers of the intact model (ignores an active layer view)."""
    return len(intact_layers(model))


def clear_view_state(model: nn.Module) -> None:
    """Forget the layer-view bookkeeping ``keep_layers`` keeps on ``model`` (a copy made inside a view is intact)."""
    for name in VIEW_STATE:
        vars(model).pop(name, None)


def active_layers(model: nn.Module) -> list[int]:
    """Original indices of the decoder layers the model runs now: an active view's, else all of them."""
    kept = getattr(model, "_layercollapse_kept", None)
    return list(kept) if kept is not None else list(range(len(backbone(model).layers)))


@contextmanager
def keep_layers(model: nn.Module, kept: Sequence[int]) -> Iterator[nn.Module]:
    """Run ``model`` with only the decoder layers ``kept`` (original indices, any order given).

    Yields the same model object; on exit the model is restored as it was (intact, or the
    enclosing view), also after an exception. Views nest: inside a view, ``kept`` must be a
    subset of the layers that view runs (``with drop_layers(m, [3]): score(m, …, layers=…)``).
    """
    decoder = backbone(model)
    config = decoder.config
    intact = intact_layers(model)
    kept = validate_layer_indices(kept, len(intact), "kept layer")
    enclosing = active_layers(model)
    outside = sorted(set(kept) - set(enclosing))
    if outside:
        raise ValueError(f"kept layers {outside} are removed by the layer view already active on this model "
                         f"(it runs {enclosing}); a view inside a view keeps a subset of its layers")
    if not hasattr(model, "_layercollapse_intact_types"):
        model._layercollapse_intact_types = getattr(config, "layer_types", None)
    intact_types = model._layercollapse_intact_types
    saved = (decoder.layers, config.num_hidden_layers, getattr(config, "layer_types", None),
             getattr(model, "_layercollapse_original_layers", None), getattr(model, "_layercollapse_kept", None),
             {id(m): m.layer_idx for layer in intact for m in _attention_modules(layer)})
    try:
        model._layercollapse_original_layers = intact
        model._layercollapse_kept = tuple(kept)
        decoder.layers = nn.ModuleList([intact[i] for i in kept])
        config.num_hidden_layers = len(kept)
        if intact_types is not None:
            config.layer_types = [intact_types[i] for i in kept]
        for position, layer in enumerate(decoder.layers):
            for module in _attention_modules(layer):
                module.layer_idx = position
        yield model
    finally:
        layers, count, types, original, previous_kept, layer_idx = saved
        decoder.layers = layers
        config.num_hidden_layers = count
        if intact_types is not None:
            config.layer_types = types
        for layer in intact:
            for module in _attention_modules(layer):
                module.layer_idx = layer_idx[id(module)]
        model._layercollapse_original_layers = original
        model._layercollapse_kept = previous_kept


@contextmanager
def drop_layers(model: nn.Module, layers: Iterable[int]) -> Iterator[nn.Module]:
    """Run ``model`` without the decoder layers ``layers`` (original indices).

    ``drop_layers(model, [])`` is the intact model. Out-of-range or repeated
    indices raise before the model is touched.
    """
    removed = set(validate_layer_indices(layers, n_layers(model), "removed layer"))
    with keep_layers(model, [i for i in active_layers(model) if i not in removed]) as view:
        yield view
