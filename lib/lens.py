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
from torch import nn

from .architectures import decoder_layers
from .batching import Batch, iter_batches, model_device
from .budget import default_token_budget
from .layers import active_layers, keep_layers
from .scoring import (
    _mask_missing_options,
    _run_with_oom_retry,
    build_requests,
    letter_token_ids,
    read_positions,
    readout_logprobs,
    run_backbone,
    scatter_scores,
)
from .tasks import Item


class LogitLens(nn.Module):
    """The identity translator: read every layer directly through the final norm and unembedding."""

    def transform_hidden(self, hidden: torch.Tensor, layer: int) -> torch.Tensor:
        """[..., d_model] residual state after ``layer`` outputs -> state to unembed (unchanged)."""
        return hidden


def _layer_output(output) -> torch.Tensor:
    return output[0] if isinstance(output, tuple) else output


@contextmanager
def capture_read_states(model: nn.Module, batch_ref: list[Batch], store: list[torch.Tensor]):
    """Record the read-position states [P, d] entering the first layer and leaving every layer.

    ``store`` receives n_kept + 1 tensors per forward pass, in layer order.
    """
    layers = decoder_layers(model)
    handles = []

    def save_input(module, args, kwargs):
        hidden = args[0] if args else kwargs["hidden_states"]
        store.append(read_positions(hidden, batch_ref[0]))

    def save_output(module, args, output):
        store.append(read_positions(_layer_output(output), batch_ref[0]))

    if len(layers):
        handles.append(layers[0].register_forward_pre_hook(save_input, with_kwargs=True))
    for layer in layers:
        handles.append(layer.register_forward_hook(save_output))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def layerwise_scores(
    model: nn.Module,
    tokenizer,
    items: Sequence[Item],
    format: str = "letter",
    layers: Sequence[int] | None = None,
    *,
    lens: nn.Module | None = None,
    task: str | None = None,
    shots: Sequence[Item] = (),
    token_budget: int | None = None,
    progress: bool | str = True,
    shared_context: bool = True,
) -> np.ndarray:
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
    n_options = max(len(item.options) for item in items)
    requests = build_requests(tokenizer, items, format, task, shots)
    device = model_device(model)
    letter_ids = torch.tensor(letter_token_ids(tokenizer, n_options), device=device) if format == "letter" else None
    out = np.full((len(kept) + 1, len(items), n_options), -np.inf, dtype=np.float32)
    readout_layers = [-1] + kept

    def run(budget: int) -> None:
        with torch.inference_mode(), keep_layers(model, kept):
            for batch in iter_batches(model, tokenizer, requests, budget, progress or False, shared_context):
                states: list[torch.Tensor] = []
                with capture_read_states(model, [batch], states):
                    run_backbone(model, batch)
                for depth, (layer, state) in enumerate(zip(readout_layers, states)):
                    translated = lens.transform_hidden(state, layer)
                    values = readout_logprobs(model, translated, batch, letter_ids, normed=False)
                    scatter_scores(values, batch, out[depth], letter=letter_ids is not None)

    _run_with_oom_retry(run, token_budget or default_token_budget(device))
    return _mask_missing_options(out, items)
