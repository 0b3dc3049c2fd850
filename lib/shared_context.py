"""Cloze scoring with each item's context encoded once and shared by its options.

``scoring.score(..., "cloze")`` runs one sequence per option: context + continuation. The
context is the same for every option of an item (lm-evaluation-harness tokenises it on its
own, see ``prompts.encode_cloze_pair``), so this module packs an item into one row,

    context | option 0 | option 1 | ... | option K-1

with position ids restarting after the context for every option and a 4-D attention mask
in which an option's tokens see the context and their own earlier tokens only. Each
position then computes exactly what it computes in its own sequence; ARC-Easy rows shrink
from four ~33-token sequences to one ~57-token row.

Opt-in (:func:`score_shared_context`): the stored results of the profiles are computed by
``scoring.score``, and ``tests/test_shared_context.py`` shows both agree. Items whose options
do not share a context (WinoGrande's partial scoring) keep one row per option. Models with
sliding-window layers (Gemma-3) get the packed row only when it fits inside the window.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import groupby

import numpy as np
import torch
from torch import nn

from .architectures import n_layers
from .layers import keep_layers
from .scoring import (
    Batch,
    Request,
    _mask_missing_options,
    _run_with_oom_retry,
    build_requests,
    collate,
    model_device,
    plan_batches,
    read_positions,
    readout_logprobs,
    run_backbone,
    scatter_scores,
)
from .tasks import Item

Row = tuple[Request, ...]  # requests of one item sharing a context, in option order


def context_length(row: Row) -> int:
    """Tokens shared by every request of ``row`` (the whole sequence minus its continuation)."""
    return len(row[0].tokens) - row[0].n_target


def pack_rows(requests: Sequence[Request], max_length: int | None = None) -> list[Row]:
    """Group cloze requests into rows: an item's requests with the same context tokens share a row.

    A row of one request is scored as an ordinary sequence (``scoring.collate``, 2-D mask).

    Args:
        max_length: longest packed row allowed (a sliding window); longer groups stay one request per row.
    """
    rows: list[Row] = []
    for _, same_item in groupby(requests, key=lambda r: r.item):
        group = list(same_item)
        by_context: dict[tuple[int, ...], list[Request]] = {}
        for request in group:
            by_context.setdefault(request.tokens[: len(request.tokens) - request.n_target], []).append(request)
        for context, members in by_context.items():
            packed_length = len(context) + sum(r.n_target for r in members)
            if max_length is not None and packed_length > max_length:
                rows.extend((r,) for r in members)
            else:
                rows.append(tuple(members))
    return rows


def row_length(row: Row) -> int:
    """Tokens of the packed row: the context once plus every continuation."""
    return context_length(row) + sum(r.n_target for r in row)


def plan_row_batches(rows: Sequence[Row], token_budget: int) -> list[list[int]]:
    """Batches of row indices by packed length, longest first, rows x max length <= budget (``plan_batches``'s plan)."""
    stand_ins = [Request(index, -1, (0,) * row_length(row), 0) for index, row in enumerate(rows)]
    return plan_batches(stand_ins, token_budget)


def collate_rows(rows: Sequence[Row], pad_id: int, device: torch.device, dtype: torch.dtype) -> Batch:
    """Left-pad packed rows into a :class:`Batch` whose ``attention_mask`` is 4-D.

    ``attention_mask`` is float [B, 1, T, T] (0 where a query may attend, the dtype's minimum
    elsewhere; padding queries see themselves so no row is empty); ``batch.requests`` lists
    every request of every row, and ``read_owner`` indexes it, so ``scoring.scatter_scores``
    sums each option's continuation log-probs as for unpacked batches.
    """
    width = max(row_length(row) for row in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    segment = torch.full((len(rows), width), -2, dtype=torch.long)  # -2 pad, -1 context, k option k
    positions = torch.zeros((len(rows), width), dtype=torch.long)
    requests: list[Request] = []
    read_rows, read_at, targets, owners = [], [], [], []
    for b, row in enumerate(rows):
        start = width - row_length(row)
        n_context = context_length(row)
        ids[b, start:start + n_context] = torch.tensor(row[0].tokens[:n_context])
        segment[b, start:start + n_context] = -1
        positions[b, start:start + n_context] = torch.arange(n_context)
        cursor = start + n_context
        for k, request in enumerate(row):
            continuation = request.tokens[n_context:]
            n = len(continuation)
            ids[b, cursor:cursor + n] = torch.tensor(continuation)
            segment[b, cursor:cursor + n] = k
            positions[b, cursor:cursor + n] = torch.arange(n_context, n_context + n)
            predictors = [start + n_context - 1] + list(range(cursor, cursor + n - 1))  # last context token, then own
            read_rows.extend([b] * n)
            read_at.extend(predictors)
            targets.extend(continuation)
            owners.extend([len(requests)] * n)
            requests.append(request)
            cursor += n
    query, key = segment[:, :, None], segment[:, None, :]  # [B, T, 1], [B, 1, T]
    causal = torch.ones(width, width, dtype=torch.bool).tril()
    allowed = causal & (key != -2) & ((key == -1) | (key == query))
    allowed |= torch.eye(width, dtype=torch.bool)  # padding queries attend to themselves
    mask = torch.zeros((len(rows), 1, width, width), dtype=dtype)
    mask.masked_fill_(~allowed[:, None], torch.finfo(dtype).min)
    as_long = lambda values: torch.tensor(values, dtype=torch.long, device=device)  # noqa: E731
    return Batch(requests, ids.to(device), mask.to(device), positions.to(device),
                 as_long(read_rows), as_long(read_at), as_long(targets), as_long(owners))


def sliding_window(model: nn.Module) -> int | None:
    """The smallest attention window of the model's layers, or None when every layer attends globally."""
    config = model.config
    types = getattr(config, "layer_types", None) or []
    window = getattr(config, "sliding_window", None)
    if window and (not types or any("sliding" in t for t in types)):
        return int(window)
    return None


def score_shared_context(
    model: nn.Module,
    tokenizer,
    items: Sequence[Item],
    layers: Sequence[int] | None = None,
    *,
    task: str | None = None,
    token_budget: int = 1024,
) -> np.ndarray:
    """Cloze option scores, float32 [n_items, n_options] (summed log-probs), as ``scoring.score(..., "cloze")``."""
    n_options = max(len(item.options) for item in items)
    rows = pack_rows(build_requests(tokenizer, items, "cloze", task), max_length=sliding_window(model))
    device = model_device(model)
    dtype = next(model.parameters()).dtype
    out = np.full((len(items), n_options), -np.inf, dtype=np.float32)

    packed = [row for row in rows if len(row) > 1]
    single = [row[0] for row in rows if len(row) == 1]  # the model's own 2-D mask (and sliding window) applies

    def batches(budget: int) -> Iterator[Batch]:
        for indices in plan_row_batches(packed, budget):
            yield collate_rows([packed[i] for i in indices], tokenizer.pad_token_id, device, dtype)
        for indices in plan_batches(single, budget):
            yield collate([single[i] for i in indices], tokenizer.pad_token_id, device)

    def run(budget: int) -> None:
        kept = range(n_layers(model)) if layers is None else layers
        with torch.inference_mode(), keep_layers(model, kept):
            for batch in batches(budget):
                hidden = run_backbone(model, batch)
                values = readout_logprobs(model, read_positions(hidden, batch), batch, None, normed=True)
                scatter_scores(values, batch, out, letter=False)

    _run_with_oom_retry(run, token_budget)
    return _mask_missing_options(out, items)
