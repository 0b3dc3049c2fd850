"""Layer-wise readout: option scores at every layer of one forward pass (logit lens, tuned lens).

The residual stream after layer ``l`` is read through the final norm and the
unembedding. Index 0 of the layer axis is the embedding output (before any
layer); index ``l + 1`` is the output of the ``l``-th kept layer, so the last
index equals the model's own output. For a pre-norm decoder this readout is
exactly the network truncated after layer ``l`` (tests check it).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager

import numpy as np
import torch
from layercollapse.data.tasks import Item
from layercollapse.model.hooks import hook_layers
from layercollapse.model.layers import active_layers
from layercollapse.readout.batching import Batch
from layercollapse.readout.scoring import (
    for_each_batch,
    mask_missing_options,
    read_positions,
    readout_logprobs,
    run_backbone,
    scatter_scores,
    scoring_pass,
)
from torch import nn


class LogitLens(nn.Module):
    """The identity translator: read every layer directly through the final norm and unembedding."""

    def transform_hidden(self, hidden: torch.Tensor, layer: int) -> torch.Tensor:
        """[..., d_model] residual state after ``layer`` outputs -> state to unembed (unchanged)."""
        return hidden


@contextmanager
def capture_read_states(model: nn.Module, batch_ref: list[Batch], store: list[torch.Tensor]):
    """Record the read-position states [P, d] entering the first layer and leaving every layer.

    ``store`` receives n_kept + 1 tensors per forward pass, in layer order.
    """
    def save(hidden: torch.Tensor) -> None:
        store.append(read_positions(hidden, batch_ref[0]))

    with hook_layers(model, lambda layer, hidden_in, hidden_out: save(hidden_out), on_embeddings=save):
        yield


def layerwise_scores(model: nn.Module, tokenizer, items: Sequence[Item], format: str = "letter",
                     layers: Sequence[int] | None = None, *, lens: nn.Module | None = None, task: str | None = None,
                     shots: Sequence[Item] = (), token_budget: int | None = None, progress: bool | str = True,
                     shared_context: bool = True) -> np.ndarray:
    """Option scores read out after every layer, in one forward pass per batch.

    Args:
        layers: original indices of the layers to run (None: all, or an active view's); the readout covers each of them.
        lens: a module with ``transform_hidden(h, layer)`` (default :class:`LogitLens`); ``layer`` is
            the original index of the layer whose output is read (-1 for the embeddings).
        token_budget, shared_context: batching, as in ``scoring.score``.
    Returns:
        float32 [n_kept + 1, n_items, n_options]: index 0 = embeddings, index i = after the i-th kept layer.
    """
    lens = lens or LogitLens()
    kept = active_layers(model) if layers is None else sorted(layers)
    scoring = scoring_pass(model, tokenizer, items, format, task, shots)
    out = np.full((len(kept) + 1, len(items), scoring.n_options), -np.inf, dtype=np.float32)
    readout_layers = [-1] + kept

    def on_batch(batch: Batch) -> None:
        states: list[torch.Tensor] = []  # n_kept + 1 of [P, d]
        with capture_read_states(model, [batch], states):
            run_backbone(model, batch)
        for depth, (layer, state) in enumerate(zip(readout_layers, states)):
            values = readout_logprobs(model, lens.transform_hidden(state, layer), batch, scoring.letter_ids,
                                      normed=False)
            scatter_scores(values, batch, out[depth], letter=scoring.letter)

    for_each_batch(model, tokenizer, scoring.requests, kept, on_batch, token_budget=token_budget,
                   progress=progress, shared_context=shared_context)
    return mask_missing_options(out, items)
