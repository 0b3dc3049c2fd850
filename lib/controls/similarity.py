"""Representation similarity between intact and pruned networks (claim C2): linear CKA and cosine.

The paper argues that similarity of hidden states stays high while accuracy
collapses. States are read at the positions the scoring reads (the last token of a
letter prompt; each continuation-predicting token in cloze), before the final norm.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from layercollapse.data.tasks import Item
from layercollapse.model.architectures import unembedding
from layercollapse.model.hooks import hook_final_norm
from layercollapse.model.layers import active_layers
from layercollapse.readout.batching import Batch, Request
from layercollapse.readout.lens import capture_read_states
from layercollapse.readout.scoring import build_requests, for_each_batch, read_positions, run_backbone
from torch import nn


def _centered(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x - x.mean(axis=0, keepdims=True)


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA (Kornblith et al. 2019) between two sets of states of the same n tokens.

    CKA = ||Yc^T Xc||_F^2 / (||Xc^T Xc||_F · ||Yc^T Yc||_F), with Xc, Yc column-centred
    (the biased HSIC estimator; its normalisation constants cancel).

    Args:
        x: [n_tokens, d_x]; y: [n_tokens, d_y] (d_x may differ from d_y).
    Returns:
        float in [0, 1]; 1 when Y is an orthogonal transform of X times a scalar (plus a shift).
    """
    x, y = _centered(x), _centered(y)
    if x.ndim != 2 or y.ndim != 2 or len(x) != len(y):
        raise ValueError(f"linear_cka needs [n, d] matrices with the same n, got {x.shape} and {y.shape}")
    cross = np.linalg.norm(y.T @ x) ** 2
    return float(cross / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)))


def mean_cosine(x: np.ndarray, y: np.ndarray) -> float:
    """Mean over tokens of cos(x_i, y_i) for states [n_tokens, d]; a zero vector counts as cosine 0."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 2:
        raise ValueError(f"mean_cosine needs two [n, d] matrices of one shape, got {x.shape} and {y.shape}")
    norms = np.linalg.norm(x, axis=-1) * np.linalg.norm(y, axis=-1)  # [n]
    dots = (x * y).sum(axis=-1)  # [n]
    return float(np.mean(np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 0)))


def _read_slots(requests: Sequence[Request]) -> dict[tuple[int, int], int]:
    """First output row of each request's read positions ((item, option) -> offset), in request order."""
    offsets, start = {}, 0
    for request in requests:
        offsets[(request.item, request.option)] = start
        start += max(request.n_target, 1)
    return offsets


def _batch_slots(batch: Batch, offsets: dict[tuple[int, int], int]) -> torch.Tensor:
    """Output rows, long [P], of a batch's read positions (rows of a request are consecutive in a batch)."""
    slots = []
    for request in batch.requests:
        start = offsets[(request.item, request.option)]
        slots.extend(range(start, start + max(request.n_target, 1)))
    return torch.tensor(slots, dtype=torch.long)


def hidden_states_at_read_positions(model: nn.Module, tokenizer, items: Sequence[Item], format: str = "letter",
                                    layers: Sequence[int] | None = None, task: str | None = None, *,
                                    shots: Sequence[Item] = (), token_budget: int | None = None,
                                    progress: bool | str = False) -> np.ndarray:
    """Residual states (before the final norm) at the scoring's read positions, after every kept layer.

    Args:
        layers: original indices of the layers to run (None: all).
        shots: solved examples prepended in letter format, as in ``scoring.score``.
    Returns:
        float32 [n_kept + 1, n_positions, d_model]; index 0 = embeddings, index i = after the
        i-th kept layer. Positions in item order (letter: one per item, the last prompt token;
        cloze: per item, per option, each position predicting a continuation token).
    """
    kept = active_layers(model) if layers is None else sorted(layers)
    requests = build_requests(tokenizer, items, format, task, shots)
    offsets = _read_slots(requests)
    n_positions = sum(max(request.n_target, 1) for request in requests)
    out = np.zeros((len(kept) + 1, n_positions, unembedding(model).in_features), dtype=np.float32)  # [L+1, P, d]

    def on_batch(batch) -> None:
        states: list[torch.Tensor] = []
        with capture_read_states(model, [batch], states):
            run_backbone(model, batch)
        out[:, _batch_slots(batch, offsets).numpy()] = torch.stack(states).float().cpu().numpy()  # [n_kept + 1, P, d]

    for_each_batch(model, tokenizer, requests, kept, on_batch, token_budget=token_budget, progress=progress,
                   shared_context=True)
    return out


def representation_similarity(intact_states: np.ndarray, pruned_states: np.ndarray) -> dict[str, float]:
    """Linear CKA and mean cosine between the final-layer states of the intact and the pruned network.

    Args:
        intact_states, pruned_states: outputs of :func:`hidden_states_at_read_positions`,
            float [n_kept + 1, n_positions, d_model] (the last layer index is used), or
            already the final-layer states [n_positions, d_model]. Same items and format.
    Returns:
        {"cka": float in [0, 1], "cosine": float in [-1, 1]}.
    """
    final = [states[-1] if np.ndim(states) == 3 else states for states in (intact_states, pruned_states)]
    return {"cka": linear_cka(*final), "cosine": mean_cosine(*final)}


def similarity_along(model: nn.Module, tokenizer, items: Sequence[Item], trace, format: str,
                     task: str | None = None, shots: Sequence[Item] = ()) -> pd.DataFrame:
    """Linear CKA and mean cosine between the intact and each pruned network's final states along ``trace``.

    Args:
        items: the trace's evaluation items; trace: a ``pruning.Trace`` (its kept layers per step);
        shots: the trace's solved examples (letter format).
    Returns:
        one row per step: step, cka, cosine.
    """
    states = FinalStates(model, tokenizer, items, format, task, shots)
    intact = states.along(trace.kept_layers(0))
    rows = [representation_similarity(intact, states.along(trace.kept_layers(step))) for step in range(trace.n_steps)]
    return pd.DataFrame({"step": np.arange(trace.n_steps), **pd.DataFrame(rows).to_dict("list")})


class FinalStates:
    """Final states (before the final norm) at the read positions of ``items``, of a sequence of nested networks.

    ``along(kept)`` equals ``hidden_states_at_read_positions(..., layers=kept)[-1]`` (same batches, same layers), but
    runs only the layers after the first one it drops from the previous network (``PrefixRunner``), as a pruning
    trace does; a network asked again is not run again.
    """

    def __init__(self, model: nn.Module, tokenizer, items: Sequence[Item], format: str, task: str | None = None,
                 shots: Sequence[Item] = ()) -> None:
        from layercollapse.pruning.prefix import PrefixRunner
        from layercollapse.pruning.encoding import encode_items

        requests = build_requests(tokenizer, items, format, task, shots)
        self.model, self.offsets = model, _read_slots(requests)
        self.n_positions = sum(max(request.n_target, 1) for request in requests)
        self.runner = PrefixRunner(model, encode_items(model, tokenizer, items, format, task, shots=shots))
        self.last: tuple[tuple[int, ...], np.ndarray] | None = None

    def along(self, kept: Sequence[int]) -> np.ndarray:
        """float32 [n_positions, d_model] of the network with layers ``kept`` (original indices), positions in item
        order as :func:`hidden_states_at_read_positions`."""
        kept = tuple(sorted(kept))
        if self.last is not None and self.last[0] == kept:
            return self.last[1]
        captured: list[torch.Tensor] = []  # per batch [B, T, d]
        with hook_final_norm(self.model, captured.append):
            self.runner.run(kept, remember=True)
        batches = self.runner.encoded.batches
        if len(captured) != len(batches):
            raise RuntimeError(f"captured {len(captured)} final states for {len(batches)} batches")
        out = np.zeros((self.n_positions, unembedding(self.model).in_features), dtype=np.float32)  # [P, d]
        for batch, hidden in zip(batches, captured):
            out[_batch_slots(batch, self.offsets).numpy()] = read_positions(hidden, batch).float().cpu().numpy()
        self.last = (kept, out)
        return out
