"""Option scores: the hot path.

``score`` turns items into one float32 score per option, ``[n_items, n_options]``
(log-probabilities; ``-inf`` pads items with fewer options). Requests are tokenised
once and batched by ``batching`` (length-sorted under a token budget, left-padded,
a cloze item's options packed behind one copy of its context), and run under
``torch.inference_mode``. Only the logits that are needed are computed: the last
position for ``letter``, the continuation positions for ``cloze``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from layercollapse.data.prompts import (
    check_format,
    cloze_pairs,
    letter_prompt,
    option_letters,
)
from layercollapse.data.tasks import Item
from layercollapse.model.architectures import backbone, hidden_to_logits
from layercollapse.model.layers import active_layers, keep_layers
from layercollapse.readout.batching import Batch, Request, iter_batches, model_device
from layercollapse.readout.budget import default_token_budget
from torch import nn


def encode_text(tokenizer, text: str) -> list[int]:
    """Token ids of ``text`` with the tokenizer's special tokens (BOS where the model has one)."""
    return tokenizer(text, add_special_tokens=True).input_ids


def letter_token_ids(tokenizer, n_options: int) -> list[int]:
    """Vocabulary ids of " A", " B", … (each must be one token)."""
    ids = []
    for letter in option_letters(n_options):
        encoded = tokenizer(letter, add_special_tokens=False).input_ids
        if len(encoded) != 1:
            raise ValueError(f"Option letter {letter!r} is {len(encoded)} tokens for this tokenizer; letter format needs 1")
        ids.append(encoded[0])
    return ids


def encode_cloze_pair(tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """Tokenise like lm-evaluation-harness: trailing context spaces move to the continuation,
    and the continuation tokens are those of ``context + continuation`` past the context's."""
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    whole = encode_text(tokenizer, context + continuation)
    context_ids = encode_text(tokenizer, context)
    return context_ids, whole[len(context_ids):]


def build_requests(
    tokenizer, items: Sequence[Item], format: str, task: str | None = None, shots: Sequence[Item] = ()
) -> list[Request]:
    """Tokenise every item into requests (one per item for letter, one per option for cloze)."""
    check_format(format)
    requests = []
    for index, item in enumerate(items):
        if format == "letter":
            requests.append(Request(index, -1, tuple(encode_text(tokenizer, letter_prompt(item, task, shots))), 0))
            continue
        for option, (context, continuation) in enumerate(cloze_pairs(item, task, shots)):
            context_ids, target_ids = encode_cloze_pair(tokenizer, context, continuation)
            if not target_ids:
                raise ValueError(f"Item '{item.id}' option {option}: the continuation {continuation!r} is empty")
            requests.append(Request(index, option, tuple(context_ids + target_ids), len(target_ids)))
    return requests


def run_backbone(model: nn.Module, batch: Batch, inputs_embeds: torch.Tensor | None = None) -> torch.Tensor:
    """Final-normed hidden states [B, T, d_model] of the (possibly layer-viewed) model.

    ``inputs_embeds`` ([B, T, d_model]) replaces the token embeddings: the prefix
    cache passes the residual stream at some layer's input here.
    """
    inputs = {"inputs_embeds": inputs_embeds} if inputs_embeds is not None else {"input_ids": batch.input_ids}
    output = backbone(model)(
        **inputs, attention_mask=batch.attention_mask, position_ids=batch.position_ids, use_cache=False
    )
    return output.last_hidden_state


def read_positions(hidden: torch.Tensor, batch: Batch) -> torch.Tensor:
    """Hidden states at the read positions: [B, T, d] -> [P, d]."""
    return hidden[batch.read_rows, batch.read_positions]


def readout_logprobs(
    model: nn.Module, states: torch.Tensor, batch: Batch, letter_ids: torch.Tensor | None, normed: bool
) -> torch.Tensor:
    """Log-probabilities that the scoring needs, from read-position states [P, d].

    Returns:
        letter: float32 [P, K] log-probs of the option letters (full-vocabulary softmax);
        cloze: float32 [P] log-prob of each continuation token.
    """
    logprobs = torch.log_softmax(hidden_to_logits(model, states, normed=normed), dim=-1)  # [P, vocab]
    if letter_ids is not None:
        return logprobs[:, letter_ids]
    return logprobs.gather(-1, batch.targets[:, None])[:, 0]


def scatter_scores(values: torch.Tensor, batch: Batch, out: np.ndarray, letter: bool) -> None:
    """Write a batch's read-out log-probs into the [n_items, n_options] array ``out`` in place."""
    values = values.float().cpu().numpy()
    if letter:
        for row, request in enumerate(batch.requests):
            out[request.item] = values[row]
        return
    sums = np.zeros(len(batch.requests), dtype=np.float64)
    np.add.at(sums, batch.read_owner.cpu().numpy(), values)
    for row, request in enumerate(batch.requests):
        out[request.item, request.option] = sums[row]


def mask_missing_options(out: np.ndarray, items: Sequence[Item]) -> np.ndarray:
    """``out`` [..., n_items, n_options] with the options an item does not have set to -inf, in place."""
    for index, item in enumerate(items):
        out[..., index, len(item.options):] = -np.inf
    return out


def _run_with_oom_retry(fn: Callable[[int], None], token_budget: int) -> None:
    """Call ``fn(budget)``; on a GPU out-of-memory error halve the budget and retry."""
    while True:
        try:
            fn(token_budget)
            return
        except torch.OutOfMemoryError:
            if token_budget <= 256:
                raise
            token_budget //= 2
            torch.cuda.empty_cache()


@dataclass(frozen=True)
class ScoringPass:
    """What one scoring pass over items needs: the requests, the option-letter ids (letter format) and K."""

    requests: list[Request]
    letter_ids: torch.Tensor | None  # int64 [K] on the model's device; None for cloze
    n_options: int

    @property
    def letter(self) -> bool:
        return self.letter_ids is not None


def scoring_pass(model: nn.Module, tokenizer, items: Sequence[Item], format: str, task: str | None,
                 shots: Sequence[Item] = ()) -> ScoringPass:
    """The requests of ``items`` in ``format`` and what reading them out needs."""
    n_options = max(len(item.options) for item in items)
    device = model_device(model)
    letter_ids = torch.tensor(letter_token_ids(tokenizer, n_options), device=device) if format == "letter" else None
    return ScoringPass(build_requests(tokenizer, items, format, task, shots), letter_ids, n_options)


def for_each_batch(model: nn.Module, tokenizer, requests: Sequence[Request], layers: Sequence[int] | None,
                   on_batch: Callable[[Batch], None], *, token_budget: int | None, progress: bool | str,
                   shared_context: bool) -> None:
    """Call ``on_batch(batch)`` for every batch of ``requests``, under inference mode, with only ``layers`` running
    (original indices; None: all, or an active view's); on a GPU out-of-memory error the whole pass restarts at
    half the token budget (None: ``budget.default_token_budget`` of the model's device)."""
    def run(budget: int) -> None:
        kept = active_layers(model) if layers is None else layers
        with torch.inference_mode(), keep_layers(model, kept):
            for batch in iter_batches(model, tokenizer, requests, budget, progress or False, shared_context):
                on_batch(batch)

    _run_with_oom_retry(run, token_budget or default_token_budget(model_device(model)))


def score(model: nn.Module, tokenizer, items: Sequence[Item], format: str = "letter",
          layers: Sequence[int] | None = None, *, task: str | None = None, shots: Sequence[Item] = (),
          token_budget: int | None = None, progress: bool | str = True, shared_context: bool = True) -> np.ndarray:
    """Score every option of every item.

    Args:
        items: the items (any K; shorter option lists are padded with -inf).
        format: "letter" (next-token log-prob of " A", " B", …) or "cloze" (summed
            log-likelihood of each option text as a continuation).
        layers: original indices of the decoder layers to run (None: all, or those of an active
            ``drop_layers`` view: ``with drop_layers(model, [3]): score(...)`` scores the pruned network).
        task: task name, for task-specific templates (MMLU header, WinoGrande partial scoring).
        shots: solved examples prepended to every prompt (k-shot; letter and cloze format).
        token_budget: max rows x padded length per batch (None: ``budget.default_token_budget``
            of the model's device); halved on GPU out-of-memory.
        shared_context: cloze: run each item's context once, its options packed behind it
            (``batching``; equal scores); False: one sequence per option, as the harness runs them.
    Returns:
        float32 [n_items, n_options] log-probabilities (cloze: summed over continuation tokens).
    """
    scoring = scoring_pass(model, tokenizer, items, format, task, shots)
    out = np.full((len(items), scoring.n_options), -np.inf, dtype=np.float32)

    def on_batch(batch: Batch) -> None:
        hidden = run_backbone(model, batch)  # [B, T, d], final-normed
        values = readout_logprobs(model, read_positions(hidden, batch), batch, scoring.letter_ids, normed=True)
        scatter_scores(values, batch, out, letter=scoring.letter)

    for_each_batch(model, tokenizer, scoring.requests, layers, on_batch, token_budget=token_budget,
                   progress=progress, shared_context=shared_context)
    return mask_missing_options(out, items)


def option_lengths(items: Sequence[Item]) -> np.ndarray:
    """Character length of each option text, int [n_items, n_options] (0 pads); harness ``acc_norm`` divides by it."""
    n_options = max(len(item.options) for item in items)
    lengths = np.zeros((len(items), n_options), dtype=np.int64)
    for index, item in enumerate(items):
        lengths[index, : len(item.options)] = [len(option) for option in item.options]
    return lengths
