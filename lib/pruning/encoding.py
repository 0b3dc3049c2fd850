"""Items and passages tokenised and batched once per run, on the model's device: what every pruned network is scored on."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from layercollapse.data.tasks import Item
from layercollapse.readout.batching import Batch, Request, collate_rows, model_device, plan_rows
from layercollapse.readout.budget import default_token_budget
from layercollapse.readout.scoring import build_requests, letter_token_ids
from torch import nn

MAX_TEXT_TOKENS = 256  # calibration passages are cut to this many tokens


@dataclass(frozen=True, eq=False)
class EncodedSet:
    """Items or passages tokenised and batched once per run, on the model's device.

    Attributes:
        batches: left-padded batches in plan order.
        row_options: int [n_rows], options of each row (scores past them are -inf).
        letter_ids: long [n_options] ids of " A", " B", ... (letter format), else None.
        n_targets: scored continuation tokens in all (cloze and passages; 0 for letter).
        token_budget: rows x padded length per batch the set was planned with.
    """

    batches: list[Batch]
    row_options: np.ndarray
    letter_ids: torch.Tensor | None
    n_targets: int
    token_budget: int = 0

    @property
    def n_rows(self) -> int:
        return len(self.row_options)

    @property
    def n_options(self) -> int:
        return int(self.row_options.max())

    @property
    def n_tokens(self) -> int:
        """Padded positions over all batches (rows x width): what a prefix cache holds per layer."""
        return sum(int(batch.input_ids.numel()) for batch in self.batches)


def _encode(model: nn.Module, tokenizer, requests: Sequence[Request], row_options: Sequence[int],
            letter_ids: Sequence[int] | None, token_budget: int | None, shared_context: bool = True) -> EncodedSet:
    device = model_device(model)
    budget = token_budget or default_token_budget(device)
    batches = [collate_rows(model, rows, tokenizer.pad_token_id)
               for rows in plan_rows(model, requests, budget, shared_context)]
    return EncodedSet(batches, np.asarray(row_options, dtype=np.int64),
                      None if letter_ids is None else torch.tensor(letter_ids, device=device),
                      sum(request.n_target for request in requests), budget)


def encode_items(model: nn.Module, tokenizer, items: Sequence[Item], format: str = "letter", task: str | None = None,
                 token_budget: int | None = None, shared_context: bool = True, shots: Sequence[Item] = ()) -> EncodedSet:
    """Tokenise and batch multiple-choice items (letter: one row per item, behind the solved ``shots``; cloze: one
    per item, its options packed behind its context, or with ``shared_context=False`` one per option)."""
    n_options = max(len(item.options) for item in items)
    letter_ids = letter_token_ids(tokenizer, n_options) if format == "letter" else None
    return _encode(model, tokenizer, build_requests(tokenizer, items, format, task, shots),
                   [len(item.options) for item in items], letter_ids, token_budget, shared_context)


def encode_passages(model: nn.Module, tokenizer, passages: Sequence[str], max_tokens: int = MAX_TEXT_TOKENS,
                    token_budget: int | None = None) -> EncodedSet:
    """Tokenise plain-text passages for the language-model loss: every token after the first is scored."""
    requests = []
    for index, text in enumerate(passages):
        tokens = tokenizer(text, add_special_tokens=True).input_ids[:max_tokens]
        if len(tokens) < 2:
            raise ValueError(f"calibration passage {index} has {len(tokens)} token(s); the LM loss needs 2 or more")
        requests.append(Request(index, 0, tuple(tokens), len(tokens) - 1))
    return _encode(model, tokenizer, requests, [1] * len(passages), None, token_budget)


def encode_calibration(model: nn.Module, tokenizer, calibration: Sequence[Item] | Sequence[str], format: str = "letter",
                       task: str | None = None, token_budget: int | None = None, shared_context: bool = True,
                       shots: Sequence[Item] = ()) -> EncodedSet:
    """A schedule's calibration set: passages (criterion ``lm_loss``; :func:`encode_passages`) or items
    (:func:`encode_items`, with ``shared_context`` and ``shots``)."""
    if isinstance(calibration[0], str):
        return encode_passages(model, tokenizer, calibration, token_budget=token_budget)
    return encode_items(model, tokenizer, calibration, format, task, token_budget, shared_context=shared_context,
                        shots=shots)
