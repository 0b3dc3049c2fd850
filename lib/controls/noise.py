"""Noise injection into the residual stream (claim C6, §4.3.1).

The output ``h`` of each chosen decoder layer is replaced, at every token, by

    h' = h + ε · σ(h) · z,   z ~ N(0, I),   ε = sqrt(variance),

where σ(h) is the standard deviation of that token's state over the hidden
dimension. ``variance`` is the paper's σ² (it sweeps 0.02, 0.1, …): the added
noise has variance ``variance · σ(h)²`` per coordinate, i.e. a fraction
``variance`` of the state's own per-token variance.

Noise is drawn from a ``torch.Generator`` seeded on entry (one per device), in the
order the hooked layers run, so the same seed and the same calls (same items,
batches and layers) give the same scores.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import pandas as pd
import torch
from layercollapse.model.hooks import hook_layers
from layercollapse.model.layers import intact_layers, validate_layer_indices
from torch import nn


def noise_scale(variance: float) -> float:
    """ε = sqrt(variance): the multiplier of σ(h) · N(0, I); ``variance`` is the paper's σ² (>= 0)."""
    if not variance >= 0:
        raise ValueError(f"Noise variance must be >= 0, got {variance}")
    return math.sqrt(variance)


def add_noise(hidden: torch.Tensor, scale: float, generator: torch.Generator) -> torch.Tensor:
    """h + scale · σ(h) · z for states [..., d_model], z drawn from ``generator``; same dtype as ``hidden``.

    σ(h): float32 [..., 1], the (biased) standard deviation over the last axis.
    """
    h = hidden.float()
    sigma = h.std(dim=-1, keepdim=True, unbiased=False)  # [..., 1]
    z = torch.randn(h.shape, generator=generator, device=h.device, dtype=torch.float32)
    return (h + scale * sigma * z).to(hidden.dtype)


@contextmanager
def inject_noise(model: nn.Module, layers: Sequence[int], variance: float, seed: int) -> Iterator[nn.Module]:
    """Add Gaussian noise to the outputs of decoder ``layers`` (original indices) while inside.

    Combine with scoring: ``with inject_noise(model, [3, 4], 0.02, seed=0): score(model, tok, items)``.
    A layer view (``score(..., layers=kept)``) may be opened inside; a removed layer gets no noise.
    ``variance == 0`` leaves every output untouched. The hooks are removed on exit, also after an exception.

    Args:
        layers: original indices of the layers whose output is perturbed.
        variance: the paper's σ²; ε = sqrt(variance) (see :func:`noise_scale`).
        seed: seeds one ``torch.Generator`` per device, created on entry.
    Yields:
        the same model object.
    """
    scale = noise_scale(variance)
    chosen = validate_layer_indices(layers, len(intact_layers(model)), "noisy layer")
    generators: dict[torch.device, torch.Generator] = {}

    def generator_on(device: torch.device) -> torch.Generator:
        if device not in generators:
            generators[device] = torch.Generator(device=device).manual_seed(seed)
        return generators[device]

    def perturb(layer: int, hidden_in: torch.Tensor, hidden_out: torch.Tensor) -> torch.Tensor | None:
        return None if scale == 0 else add_noise(hidden_out, scale, generator_on(hidden_out.device))

    with hook_layers(model, perturb, chosen):
        yield model


def score_with_noise_from_prefix(runner, layer: int, variance: float, seed: int) -> np.ndarray:
    """Option scores with noise on the output of ``layer``, starting from a remembered intact prefix.

    The layers before ``layer`` are unaffected by the noise, so the run starts from the residual
    stream entering ``layer`` that ``runner`` (a ``pruning.PrefixRunner`` that remembered the
    intact network) holds, and runs ``layer`` and everything after it with the noise hook on.

    Returns:
        float32 [n_rows, n_options] log-probabilities (-inf for missing options).
    """
    if runner.network is None or layer not in runner.states:
        raise ValueError(f"the runner remembers no network entering layer {layer}; call runner.remember(all layers)")
    with inject_noise(runner.model, [layer], variance, seed):
        return runner.run(runner.network, start=layer)


def noise_sweep(runner, chosen: Sequence[tuple[int, str]], variances: Sequence[float],
                n_draws: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Scores with noise on one layer's output at a time, from a runner that remembers the intact network.

    Args:
        runner: a ``pruning.PrefixRunner`` over the evaluation items, ``remember``-ed on every layer.
        chosen: (layer, phase) pairs; variances: the paper's sigma^2 values; n_draws: noise draws (seeds
            0..n_draws-1) per positive variance (one run at variance 0, which adds nothing).
    Returns:
        (one row per run: layer, phase, sigma2, draw; scores float32 [n_runs, n_items, n_options]).
    """
    rows, scores = [], []
    for layer, phase in chosen:
        for variance in variances:
            for draw in range(n_draws if variance > 0 else 1):
                rows.append({"layer": layer, "phase": phase, "sigma2": variance, "draw": draw})
                scores.append(score_with_noise_from_prefix(runner, layer, variance, seed=draw))
    return pd.DataFrame(rows), np.stack(scores)
