"""Layer statistics of the intact network that one-shot schedules rank layers by: ShortGPT's Block Influence and
the angular distance of Gromov et al. (2024)."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from layercollapse.model.hooks import hook_layers
from layercollapse.model.layers import keep_layers
from layercollapse.model.layers import n_layers as count_layers
from layercollapse.pruning.encoding import EncodedSet
from layercollapse.readout.scoring import run_backbone
from torch import nn


def _require_one_sequence_per_row(encoded: EncodedSet, name: str) -> None:
    if any(batch.attention_mask.dim() != 2 for batch in encoded.batches):
        raise ValueError(f"{name} reads each sequence's tokens: encode the items with shared_context=False")


def block_influence(model: nn.Module, encoded: EncodedSet) -> np.ndarray:
    """ShortGPT Block Influence of each layer of the intact model: float64 [n_layers].

    BI = 1 - mean over all non-pad tokens of cos(layer input, layer output).
    """
    n_total = count_layers(model)
    kept = tuple(range(n_total))
    cosine_sums = torch.zeros(n_total, dtype=torch.float64)
    current: list[torch.Tensor] = []  # the running batch's bool [B, T] mask

    def accumulate(layer: int, hidden_in: torch.Tensor, hidden_out: torch.Tensor) -> None:
        cosine = F.cosine_similarity(hidden_in.float(), hidden_out.float(), dim=-1)  # [B, T]
        cosine_sums[layer] += cosine[current[0]].double().sum().cpu()

    _require_one_sequence_per_row(encoded, "block_influence")
    n_tokens = 0
    with torch.inference_mode(), keep_layers(model, kept), hook_layers(model, accumulate, kept):
        for batch in encoded.batches:
            current[:] = [batch.attention_mask.bool()]
            run_backbone(model, batch)
            n_tokens += int(batch.attention_mask.sum())
    return 1.0 - (cosine_sums / n_tokens).numpy()


def angular_distances(model: nn.Module, encoded: EncodedSet) -> np.ndarray:
    """Mean angular distance arccos(cos(h_i, h_j)) / pi between residual streams, at each row's last token.

    h_l is the stream entering layer l of the intact model; h_{n_layers} is the last layer's
    output (before the final norm). Removing the block [l, l+n) joins h_l to h_{l+n}.

    Returns:
        float64 [n_layers + 1, n_layers + 1], symmetric, 0 on the diagonal, in [0, 1].
    """
    n_total = count_layers(model)
    kept = tuple(range(n_total))
    last: list[list[torch.Tensor]] = [[] for _ in range(n_total + 1)]  # per stream, per batch [B, d]

    def record(layer: int, hidden_in: torch.Tensor, hidden_out: torch.Tensor) -> None:
        last[layer].append(hidden_in[:, -1].double().cpu())  # left padding: -1 is every row's last token
        if layer == n_total - 1:
            last[n_total].append(hidden_out[:, -1].double().cpu())

    _require_one_sequence_per_row(encoded, "angular_distances")
    with torch.inference_mode(), keep_layers(model, kept), hook_layers(model, record, kept):
        for batch in encoded.batches:
            run_backbone(model, batch)
    streams = F.normalize(torch.stack([torch.cat(parts) for parts in last]), dim=-1)  # [n_layers+1, R, d]
    cosine = torch.einsum("ird,jrd->ijr", streams, streams).clamp(-1.0, 1.0)  # [n_layers+1, n_layers+1, R]
    return (torch.arccos(cosine) / math.pi).mean(dim=-1).numpy()
