"""Tokenised requests -> padded batches under a token budget.

A :class:`Request` is one tokenised sequence to score: a letter prompt, or a cloze
context + one option's continuation. Batches are planned longest first so that
rows x padded length stays under a token budget, and left-padded with position ids
that ignore the padding.

Cloze requests of one item share their context (lm-evaluation-harness encodes the
context on its own, see ``scoring.encode_cloze_pair``), so by default they are packed
into one row,

    context | option 0 | option 1 | ... | option K-1

with position ids restarting after the context for every option and a 4-D attention
mask in which an option's tokens see the context and their own earlier tokens only.
Every position then computes what it computes in its own sequence (tests check it),
and an ARC-Easy item shrinks from four ~33-token sequences to one ~57-token row.
Requests whose contexts differ (WinoGrande's partial scoring) keep one row each, and a
model with sliding-window layers (Gemma-3) gets a packed row only when it fits the window.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import groupby

import torch
from layercollapse.model.architectures import backbone
from layercollapse.progress import progress_bar
from torch import nn


@dataclass(frozen=True)
class Request:
    """One tokenised sequence to run.

    Attributes:
        item: index of the item in the scored list.
        option: option index for cloze (one request per option); -1 for letter.
        tokens: token ids of context (+ continuation for cloze).
        n_target: number of trailing continuation tokens scored (0 for letter).
    """

    item: int
    option: int
    tokens: tuple[int, ...]
    n_target: int


@dataclass
class Batch:
    """Padded tensors of a list of requests.

    Attributes:
        requests: the requests in read order (a packed row contributes each of its requests).
        input_ids, position_ids: long [B, T], left-padded.
        attention_mask: long [B, T] (1 = token, 0 = padding), or for packed rows float
            [B, 1, T, T] (0 where a query may attend, the dtype's minimum elsewhere).
        read_rows, read_positions: long [P], positions whose hidden state is read out
            (letter: the last position of each row; cloze: each position that predicts
            a continuation token).
        targets: long [P] token predicted at each read position (cloze), else empty.
        read_owner: long [P] index into ``requests`` of each read position (a request's
            read positions are consecutive).
    """

    requests: list[Request]
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    read_rows: torch.Tensor
    read_positions: torch.Tensor
    targets: torch.Tensor
    read_owner: torch.Tensor


Row = tuple[Request, ...]  # requests sharing one context, run as one sequence (a single request: its own)


def context_length(row: Row) -> int:
    """Tokens shared by every request of ``row`` (a request's sequence minus its continuation)."""
    return len(row[0].tokens) - row[0].n_target


def row_length(row: Row) -> int:
    """Tokens of the row: the context once plus every continuation."""
    return context_length(row) + sum(r.n_target for r in row)


def pack_rows(requests: Sequence[Request], max_length: int | None = None) -> list[Row]:
    """Group requests into rows: cloze requests of one item with the same context tokens share a row.

    Letter requests (no continuation) and requests with a context of their own stay alone.

    Args:
        max_length: longest packed row allowed (a sliding window); longer groups stay one request per row.
    """
    rows: list[Row] = []
    for _, same_item in groupby(requests, key=lambda r: r.item):
        by_context: dict[tuple[int, ...], list[Request]] = {}
        for request in same_item:
            by_context.setdefault(request.tokens[: len(request.tokens) - request.n_target], []).append(request)
        for members in by_context.values():
            if len(members) == 1 or members[0].n_target == 0:
                rows.extend((r,) for r in members)
            elif max_length is not None and row_length(tuple(members)) > max_length:
                rows.extend((r,) for r in members)
            else:
                rows.append(tuple(members))
    return rows


def plan_batches(lengths: Sequence[int], token_budget: int) -> list[list[int]]:
    """Group sequence indices into batches, longest first, with rows x max length <= ``token_budget``."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    for index in order:
        width = lengths[current[0]] if current else lengths[index]
        if current and (len(current) + 1) * width > token_budget:
            batches.append(current)
            current = []
        current.append(index)
    if current:
        batches.append(current)
    return batches


def collate(requests: Sequence[Request], pad_id: int, device: torch.device) -> Batch:
    """Left-pad one request per row into a :class:`Batch` on ``device`` (2-D attention mask)."""
    width = max(len(r.tokens) for r in requests)
    ids = torch.full((len(requests), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(requests), width), dtype=torch.long)
    rows, positions, targets = [], [], []
    for row, request in enumerate(requests):
        n = len(request.tokens)
        ids[row, width - n:] = torch.tensor(request.tokens)
        mask[row, width - n:] = 1
        if request.n_target == 0:
            rows.append(row)
            positions.append(width - 1)
        else:
            start = width - request.n_target
            rows.extend([row] * request.n_target)
            positions.extend(range(start - 1, width - 1))
            targets.extend(request.tokens[-request.n_target:])
    position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
    as_long = lambda values: torch.tensor(values, dtype=torch.long, device=device)  # noqa: E731
    return Batch(list(requests), ids.to(device), mask.to(device), position_ids.to(device),
                 as_long(rows), as_long(positions), as_long(targets), as_long(rows))


def collate_packed(rows: Sequence[Row], pad_id: int, device: torch.device, dtype: torch.dtype) -> Batch:
    """Left-pad packed rows into a :class:`Batch` whose ``attention_mask`` is float [B, 1, T, T].

    Padding queries attend to themselves, so no mask row is empty; ``batch.requests`` lists
    every request of every row and ``read_owner`` indexes it, so ``scoring.scatter_scores``
    sums each option's continuation log-probs as for one-request rows.
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


def model_device(model: nn.Module) -> torch.device:
    """Device of the input embeddings (the first device under a device_map)."""
    return backbone(model).embed_tokens.weight.device


def plan_rows(model: nn.Module, requests: Sequence[Request], token_budget: int,
              shared_context: bool = True) -> list[list[Row]]:
    """The rows of each batch, in run order: packed rows first (4-D mask), then one-request rows (2-D mask).

    Args:
        shared_context: pack the options of a cloze item into one row (False: one row per request).
    """
    rows = pack_rows(requests, sliding_window(model)) if shared_context else [(r,) for r in requests]
    packed = [row for row in rows if len(row) > 1]
    single = [row for row in rows if len(row) == 1]  # the model's own 2-D mask (and sliding window) applies
    return [[group[i] for i in indices] for group in (packed, single)
            for indices in plan_batches([row_length(row) for row in group], token_budget)]


def collate_rows(model: nn.Module, rows: Sequence[Row], pad_id: int) -> Batch:
    """One planned batch on the model's device: :func:`collate_packed` when a row holds several requests."""
    device = model_device(model)
    if all(len(row) == 1 for row in rows):
        return collate([row[0] for row in rows], pad_id, device)
    return collate_packed(rows, pad_id, device, next(model.parameters()).dtype)


def iter_batches(model: nn.Module, tokenizer, requests: Sequence[Request], token_budget: int,
                 progress: bool | str = False, shared_context: bool = True) -> Iterator[Batch]:
    """Batches of ``requests`` on the model's device (see :func:`plan_rows`), with a progress bar when asked."""
    plan = plan_rows(model, requests, token_budget, shared_context)
    desc = progress if isinstance(progress, str) else "scoring"
    for rows in progress_bar(plan, desc, enabled=bool(progress) and len(plan) >= 2):
        yield collate_rows(model, rows, tokenizer.pad_token_id)
