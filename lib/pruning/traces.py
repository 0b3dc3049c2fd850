"""Pruning schedules and the traces they leave: which layers go, in which order, and what the model answers after.

Every schedule is a *planner* ``(step, kept) -> Removal`` driven by one loop,
:func:`prune`, which scores the evaluation items after each step and returns a
:class:`Trace` (step 0 = the intact model), so every schedule compares in one plot:

- ``iterative`` (the paper's; SLEB-style greedy): try removing each kept layer, keep the
  removal that hurts a calibration criterion least (``dm``, ``acc``, or ``lm_loss`` on passages).
- ``block_influence`` (ShortGPT): remove layers by ascending BI = 1 - mean cos(input, output).
- ``angular_distance`` (Gromov et al. 2024): for block size n, remove the contiguous block
  [l, l+n) whose input and output are closest in angle at the last token; one step per n.
- ``reverse``: the last layer, then the one before, ... (equals the logit-lens readout).
- ``random``: a seeded random order; ``random_in_range``: k random layers of an index range.
- ``decisive_first`` (phase-aware, beyond the paper): Iterative Pruning restricted to ``layers`` (the
  intact network's Decisive Phase, ``experiments.Phases.decisive``) until they are gone, then over all
  kept layers.

Speed: a :class:`PrefixRunner` remembers the residual stream entering every layer of one
network; a subnetwork that first differs from it at layer j starts from the remembered input
of j (``inputs_embeds``), so the layers before j are not recomputed. :func:`plan_prefix_cache`
decides from the memory budget which item sets get such a cache; the others are recomputed.

Resumability: with a store, every step is checkpointed (``store.Checkpoint``); a killed run
resumes at its first missing step, and the trace is keyed by a hash of its full spec.
"""

from __future__ import annotations

import hashlib
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from layercollapse.data.prompts import check_format, shots_spec
from layercollapse.data.tasks import Item
from layercollapse.measures import metrics
from layercollapse.model.architectures import readout_of, readout_spec
from layercollapse.model.hooks import hook_layers
from layercollapse.model.layers import keep_layers, validate_layer_indices
from layercollapse.model.layers import n_layers as count_layers
from layercollapse.progress import progress_bar
from layercollapse.readout.batching import (
    Batch,
    Request,
    collate_rows,
    model_device,
    plan_rows,
)
from layercollapse.readout.budget import default_token_budget
from layercollapse.readout.scoring import (
    build_requests,
    letter_token_ids,
    read_positions,
    readout_logprobs,
    run_backbone,
    scatter_scores,
)
from layercollapse.storage.provenance import audit_record, compute_version, is_current
from layercollapse.storage.store import Checkpoint, Result, Store, normalize_spec
from torch import nn

TRACE_KIND = "trace"
SCHEDULES = ("iterative", "block_influence", "angular_distance", "reverse", "random", "random_in_range",
             "decisive_first")
#: How the site names each schedule.
SCHEDULE_NAMES = {"iterative": "Iterative Pruning", "block_influence": "ShortGPT BI", "angular_distance": "angular distance",
                  "reverse": "reverse order", "random": "random order", "random_in_range": "random within a range",
                  "decisive_first": "Decisive Phase first"}
#: Greedy criteria: name -> +1 when higher is better, -1 when lower is better.
CRITERIA = {"dm": 1, "acc": 1, "lm_loss": -1}
USES_CALIBRATION = ("iterative", "block_influence", "angular_distance", "decisive_first")
USES_SEED = ("random", "random_in_range")
GREEDY = ("iterative", "decisive_first")  # schedules that take a greedy criterion
USES_LAYERS = ("random_in_range", "decisive_first")  # schedules that take a layer set
MAX_TEXT_TOKENS = 256  # calibration passages are cut to this many tokens
READOUT_CHUNK = 1024  # read positions unembedded at once: [chunk, vocab] logits are the memory peak
CACHE_MEMORY_FRACTION = 0.5  # of free GPU memory / available RAM that prefix caches may fill


# ----------------------------------------------------------------- encoded item sets


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


def lm_loss_along(model: nn.Module, tokenizer, passages: Sequence[str], trace: Trace) -> np.ndarray:
    """Mean next-token loss of ``passages`` at every step of ``trace``: float64 [n_steps], nats per scored token.

    Each step's network reuses the previous one's prefix (``PrefixRunner``): a step that removes layer j
    recomputes only the layers after j.
    """
    encoded = encode_passages(model, tokenizer, passages)
    runner = PrefixRunner(model, encoded)
    losses = [-runner.run(trace.kept_layers(step), remember=True).sum() / encoded.n_targets
              for step in range(trace.n_steps)]
    return np.array(losses, dtype=np.float64)


def read_out(model: nn.Module, hidden: torch.Tensor, batch: Batch, letter_ids: torch.Tensor | None,
             normed: bool = True) -> torch.Tensor:
    """Log-probs the scores need, from hidden states [B, T, d] (final-normed, or not: ``normed=False``
    applies the final norm first, the logit lens on a layer's output).

    Returns:
        letter: float32 [B, n_options]; cloze and passages: float32 [P], one per scored token
        (unembedded in chunks of ``READOUT_CHUNK`` positions to bound the [P, vocab] logits).
    """
    states = read_positions(hidden, batch)  # [P, d]
    if letter_ids is not None:
        return readout_logprobs(model, states, batch, letter_ids, normed=normed)
    chunks = range(0, len(states), READOUT_CHUNK)
    return torch.cat([readout_logprobs(model, states[s:s + READOUT_CHUNK],
                                       replace(batch, targets=batch.targets[s:s + READOUT_CHUNK]), None, normed=normed)
                      for s in chunks])


class ReadoutQueue:
    """Read-position states waiting for the logit lens, unembedded together in chunks of ``READOUT_CHUNK`` rows.

    Unembedding one layer of one batch at a time multiplies a few rows by the whole [vocab, d]
    matrix, a pass bound by reading that matrix; stacking the rows of many layers and batches
    makes it one matrix product per chunk. ``add(out, batch, hidden)`` queues the read positions
    of hidden states [B, T, d] (a layer's output, before the final norm); their scores land in the
    [n_rows, n_options] array ``out`` at the latest by ``flush()``.
    """

    def __init__(self, model: nn.Module, letter_ids: torch.Tensor | None) -> None:
        self.model, self.letter_ids = model, letter_ids
        self.pending: list[tuple[np.ndarray, Batch, torch.Tensor]] = []  # (out, batch, states [P, d])
        self.n_pending = 0

    def add(self, out: np.ndarray, batch: Batch, hidden: torch.Tensor) -> None:
        states = read_positions(hidden, batch)  # [P, d], a copy
        self.pending.append((out, batch, states))
        self.n_pending += len(states)
        if self.n_pending >= READOUT_CHUNK:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        letter = self.letter_ids is not None
        states = torch.cat([s for _, _, s in self.pending])  # [N, d]
        first = self.pending[0][1]
        targets = None if letter else torch.cat([b.targets for _, b, _ in self.pending])  # [N]
        values = torch.cat([readout_logprobs(self.model, states[s:s + READOUT_CHUNK],
                                             first if letter else replace(first, targets=targets[s:s + READOUT_CHUNK]),
                                             self.letter_ids, normed=False)
                            for s in range(0, len(states), READOUT_CHUNK)])
        for (out, batch, _), part in zip(self.pending, values.split([len(s) for _, _, s in self.pending])):
            scatter_scores(part, batch, out, letter)
        self.pending, self.n_pending = [], 0


# -------------------------------------------------------------------- prefix caching


def cache_bytes(n_layers: int, n_tokens: int, d_model: int, bytes_per_value: int) -> int:
    """Size of a prefix cache: the residual stream entering ``n_layers`` layers at ``n_tokens`` padded positions."""
    return n_layers * n_tokens * d_model * bytes_per_value


def plan_prefix_cache(n_tokens: Mapping[str, int], n_layers: int, d_model: int, bytes_per_value: int,
                      budget: int) -> dict[str, bool]:
    """Which item sets get a prefix cache: in priority order, each one that still fits the budget.

    Args:
        n_tokens: set name -> padded positions (``EncodedSet.n_tokens``), most valuable first
            (calibration: reused by every candidate of a step; evaluation: once per step).
        budget: bytes (see :func:`memory_budget`).
    Returns:
        set name -> True (cache it) or False (recompute from the embeddings).
    """
    plan, used = {}, 0
    for name, tokens in n_tokens.items():
        size = cache_bytes(n_layers, tokens, d_model, bytes_per_value)
        plan[name] = used + size <= budget
        used += size if plan[name] else 0
    return plan


def memory_budget(device: torch.device | str, fraction: float = CACHE_MEMORY_FRACTION) -> int:
    """Bytes prefix caches may use: ``fraction`` of free GPU memory (CUDA) or of available RAM (psutil, else sysconf)."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free * fraction)
    try:
        import psutil

        available = psutil.virtual_memory().available
    except ImportError:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return int(available * fraction)


@dataclass(frozen=True, eq=False)
class RunnerState:
    """What a :class:`PrefixRunner` remembers of one network (:meth:`PrefixRunner.snapshot`).

    Attributes:
        network: its kept layers (original indices), or None.
        states: layer -> per batch [B, T, d], the residual stream entering that layer.
        scores: float32 [n_rows, n_options], its output scores.
        readout: layer (-1: embeddings) -> float32 [n_rows, n_options], its logit-lens readout, or None.
    """

    network: tuple[int, ...] | None
    states: dict[int, list[torch.Tensor]]
    scores: np.ndarray | None
    readout: dict[int, np.ndarray] | None


class IntactPrefixes:
    """The intact network's pass over an encoded item set, kept between traces that start from it.

    Every trace's step 0 is the intact network on its evaluation items; traces of one model on the same
    items (a profile's schedules, random orders, the seeds of one phase) share it: the first trace runs it
    (with its logit-lens readout) and the others restore it, prefix cache included, so their step 0 costs
    nothing and their step 1 starts from the remembered prefix, with scores identical to a fresh run.
    Holds the ``capacity`` most recent item sets (each one is a full prefix cache: layers x padded tokens x
    d values); the owner drops it when the model changes (``Experiments`` keeps one per loaded model).
    """

    def __init__(self, capacity: int = 1) -> None:
        self.capacity = capacity
        self.entries: dict[tuple, RunnerState] = {}

    def runner(self, model: nn.Module, encoded: EncodedSet, key: tuple, layerwise: bool) -> PrefixRunner:
        """A cached :class:`PrefixRunner` on ``encoded`` that remembers the intact network (``layerwise``: with its
        readout): restored when ``key`` (the model and the item set, :func:`intact_key`) was run before, else run now."""
        runner = PrefixRunner(model, encoded)
        if key in self.entries:
            self.entries[key] = self.entries.pop(key)  # most recent last
            runner.restore(self.entries[key])
            return runner
        runner.remember(range(count_layers(model)), layerwise=layerwise)
        self.entries[key] = runner.snapshot()
        while len(self.entries) > self.capacity:
            self.entries.pop(next(iter(self.entries)))
        return runner

    def clear(self) -> None:
        self.entries.clear()


def intact_key(model: nn.Module, spec: Mapping[str, Any], token_budget: int) -> tuple:
    """What makes two traces' intact passes the same: the model object and every field of a trace's spec that
    builds its evaluation set (not the schedule, seed, layers, calibration items or length)."""
    schedule_fields = ("schedule", "criterion", "seed", "layers", "n_remove", "calibration_ids")
    return (id(model), token_budget,
            repr(sorted((name, repr(value)) for name, value in spec.items() if name not in schedule_fields)))


class PrefixRunner:
    """Scores of kept-layer subnetworks on one :class:`EncodedSet`, reusing a remembered network's prefix.

    ``run(kept, remember=True)`` keeps the residual stream entering each layer of the network
    ``kept`` (all positions, [B, T, d] per batch). A later ``run(kept2)`` with ``kept2`` a subset
    of it starts at the first layer j that ``kept2`` drops, from the remembered input of j:
    the layers before j are shared and would compute the same states. Without a cache
    (``use_cache=False``, the naive path) every run starts from the embeddings.
    """

    def __init__(self, model: nn.Module, encoded: EncodedSet, use_cache: bool = True) -> None:
        self.model, self.encoded, self.use_cache = model, encoded, use_cache
        self.network: tuple[int, ...] | None = None  # kept layers of the remembered network
        self.states: dict[int, list[torch.Tensor]] = {}  # layer -> per batch [B, T, d] entering it
        self.network_scores: np.ndarray | None = None
        self.network_readout: dict[int, np.ndarray] | None = None  # layer (-1: embeddings) -> [n_rows, n_options]
        self.n_layer_runs = 0  # decoder layers run over the whole set: the work done

    def start_layer(self, kept: Sequence[int]) -> int | None:
        """First layer to recompute from its remembered input, or None: run from the embeddings."""
        if self.network is None or not set(kept) < set(self.network):
            return None
        return min(set(self.network) - set(kept))

    def remember(self, kept: Sequence[int], layerwise: bool = False) -> None:
        """Cache the prefix of the network ``kept`` for the runs that follow (no-op without a cache); ``layerwise``:
        with its logit-lens readout, which :meth:`run_layerwise` needs to reuse the prefix."""
        if not self.use_cache:
            return
        if layerwise:
            self.run_layerwise(kept, remember=True)
        else:
            self.run(kept, remember=True)

    def snapshot(self) -> RunnerState:
        """What the runner remembers (the tensors are shared, never copied: runs replace them, never write to them)."""
        return RunnerState(self.network, dict(self.states), None if self.network_scores is None
                           else self.network_scores.copy(), None if self.network_readout is None
                           else dict(self.network_readout))

    def restore(self, state: RunnerState) -> None:
        """Remember what :meth:`snapshot` returned, as if that network had just been run with ``remember=True``."""
        self.network, self.states = state.network, dict(state.states)
        self.network_scores = None if state.scores is None else state.scores.copy()
        self.network_readout = None if state.readout is None else dict(state.readout)

    def run(self, kept: Sequence[int], remember: bool = False, start: int | None = None) -> np.ndarray:
        """Option scores float32 [n_rows, n_options] of the network with layers ``kept`` (original indices).

        Args:
            start: run from the remembered residual stream entering this layer (default: the first layer the
                remembered network has and ``kept`` drops); the layers of ``kept`` before it must be the
                remembered network's. A hook on a layer's output (noise) runs from that layer this way.
        """
        return self._run(tuple(sorted(kept)), remember, layerwise=False, start=start)[0]

    def run_layerwise(self, kept: Sequence[int], remember: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Scores as :meth:`run`, and the logit-lens readout of the same pass.

        Returns:
            (scores float32 [n_rows, n_options], readout float32 [n_kept + 1, n_rows, n_options]): readout
            row 0 = the embeddings, row i = after the i-th kept layer (so the last row is the network's own
            output, read like ``lens.layerwise_scores``). Only the read positions of each recomputed layer
            are unembedded; rows of the shared prefix are the remembered network's.
        """
        scores, readout = self._run(tuple(sorted(kept)), remember, layerwise=True)
        return scores, readout

    def _start_for(self, kept: tuple[int, ...], layerwise: bool) -> int | None:
        start = self.start_layer(kept)
        if layerwise and start is not None and self.network_readout is None:
            return None  # the remembered prefix has no readout to reuse
        return start

    def _check_start(self, kept: tuple[int, ...], start: int) -> int:
        if start not in self.states or tuple(layer for layer in kept if layer < start) != tuple(
                layer for layer in self.network or () if layer < start):
            raise ValueError(f"the runner remembers no network whose layers before {start} are those of {kept}; "
                             "call runner.remember(...) on such a network first")
        return start

    def _run(self, kept: tuple[int, ...], remember: bool, layerwise: bool,
             start: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        if start is None and kept == self.network and (not layerwise or self.network_readout is not None):
            return self.network_scores.copy(), None if not layerwise else self._stack(kept, self.network_readout)
        start = self._start_for(kept, layerwise) if start is None else self._check_start(kept, start)
        tail = kept if start is None else tuple(layer for layer in kept if layer >= start)
        remember = remember and self.use_cache
        shape = (self.encoded.n_rows, self.encoded.n_options)
        letter = self.encoded.letter_ids is not None
        # layer -> [n_rows, n_options] readout (-1: embeddings): the shared prefix's rows, then this run's
        readout = ({} if not layerwise else {-1: np.full(shape, -np.inf, np.float32)} if start is None else
                   {layer: values for layer, values in self.network_readout.items() if layer < start})
        readout.update({layer: np.full(shape, -np.inf, np.float32) for layer in tail} if layerwise else {})
        if remember:  # keep only what this run reads, so memory never holds two caches
            self.states = {layer: s for layer, s in self.states.items() if start is not None and layer <= start}
            self.network = self.network_readout = None
        captured: dict[int, list[torch.Tensor]] = {layer: [] for layer in tail}
        out = np.full(shape, -np.inf, dtype=np.float32)
        batch_now: list[Batch] = []
        queue = ReadoutQueue(self.model, self.encoded.letter_ids)

        def on_layer(layer: int, hidden_in: torch.Tensor, hidden_out: torch.Tensor) -> None:
            if remember:
                captured[layer].append(hidden_in)
            if layerwise:
                if layer == tail[0] and start is None:  # the first layer's input: the embeddings
                    queue.add(readout[-1], batch_now[0], hidden_in)
                queue.add(readout[layer], batch_now[0], hidden_out)

        hooks = hook_layers(self.model, on_layer, tail) if remember or layerwise else nullcontext()
        with torch.inference_mode(), keep_layers(self.model, tail), hooks:
            for index, batch in enumerate(self.encoded.batches):
                batch_now[:] = [batch]
                h_in = None if start is None else self.states[start][index]  # [B, T, d]
                hidden = run_backbone(self.model, batch, inputs_embeds=h_in)  # [B, T, d], final-normed
                scatter_scores(read_out(self.model, hidden, batch, self.encoded.letter_ids), batch, out, letter)
            queue.flush()
        self.n_layer_runs += len(tail)
        for values in (out, *readout.values()):
            self._mask_missing(values)
        if remember:
            self.states = {layer: s for layer, s in self.states.items() if layer < (start or 0)} | captured
            self.network, self.network_scores = kept, out.copy()
            self.network_readout = dict(readout) if layerwise else None
        return out, self._stack(kept, readout) if layerwise else None

    def _mask_missing(self, values: np.ndarray) -> None:
        for row, n_options in enumerate(self.encoded.row_options):
            values[row, n_options:] = -np.inf

    @staticmethod
    def _stack(kept: tuple[int, ...], readout: Mapping[int, np.ndarray]) -> np.ndarray:
        return np.stack([readout[layer] for layer in (-1, *kept)])


# ------------------------------------------------------------------ layer statistics


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


# ------------------------------------------------------------------------- planners


@dataclass(frozen=True)
class Removal:
    """One step of a schedule: the layers removed at it, the layers kept after it, and its criterion value."""

    removed: tuple[int, ...]
    kept: tuple[int, ...]
    criterion: float = math.nan


Planner = Callable[[int, tuple[int, ...]], Removal]  # (step, kept before it) -> Removal; step 0 removes nothing


@dataclass(frozen=True)
class Plan:
    """A schedule ready to run.

    Attributes:
        next: the planner.
        n_steps: steps including step 0 (the intact model).
        nested: each step's kept set is a subset of the previous one (so the evaluation
            cache follows the run; angular-distance blocks are not nested and reuse the intact prefix).
    """

    next: Planner
    n_steps: int
    nested: bool = True


def without(kept: Sequence[int], layer: int) -> tuple[int, ...]:
    """``kept`` minus ``layer``."""
    return tuple(k for k in kept if k != layer)


def choose_removal(values: Sequence[float] | np.ndarray, sign: int) -> int:
    """Index of the best candidate, the largest ``sign * value``; ties go to the first (the lowest original layer)."""
    return int(np.argmax(sign * np.asarray(values, dtype=np.float64)))


def greedy_planner(calibration: PrefixRunner, criterion: Callable[[np.ndarray], float], sign: int,
                   first: Sequence[int] = ()) -> Planner:
    """Iterative Pruning: remove the kept layer whose removal hurts the calibration criterion least.

    ``first``: layers that are the only candidates while any of them is kept (``decisive_first``)."""
    def plan(step: int, kept: tuple[int, ...]) -> Removal:
        if step == 0:
            return Removal((), kept, criterion(calibration.run(kept, remember=True)))
        candidates, values = candidate_values(calibration, criterion, kept, first)
        best = candidates[choose_removal(values, sign)]
        return Removal((best,), without(kept, best), values[candidates.index(best)])

    return plan


def candidate_values(calibration: PrefixRunner, criterion: Callable[[np.ndarray], float], kept: Sequence[int],
                     first: Sequence[int] = ()) -> tuple[list[int], list[float]]:
    """One greedy step from the network ``kept``: (candidate layers, the criterion without each of them).

    The candidates are the kept layers of ``first`` while any is kept, else every kept layer.
    """
    kept, first = tuple(kept), frozenset(first)
    calibration.remember(kept)  # the prefix every candidate starts from
    candidates = [layer for layer in kept if layer in first] or list(kept)
    return candidates, [criterion(calibration.run(without(kept, layer))) for layer in candidates]  # [n_candidates]


def order_planner(order: Sequence[int], values: Sequence[float] | None = None) -> Planner:
    """Remove ``order[0]``, then ``order[1]``, ...; step s records ``values[s - 1]`` as its criterion (else NaN)."""

    def plan(step: int, kept: tuple[int, ...]) -> Removal:
        if step == 0:
            return Removal((), kept)
        layer = int(order[step - 1])
        return Removal((layer,), without(kept, layer), math.nan if values is None else float(values[step - 1]))

    return plan


def block_planner(distances: np.ndarray) -> Planner:
    """Angular-distance pruning: step n removes the block [l, l+n) minimising ``distances[l, l+n]`` (ties: lowest l)."""
    n_total = distances.shape[0] - 1

    def plan(step: int, kept: tuple[int, ...]) -> Removal:
        everything = tuple(range(n_total))
        if step == 0:
            return Removal((), everything)
        joins = [distances[start, start + step] for start in range(n_total - step + 1)]  # [n_starts]
        start = choose_removal(joins, sign=-1)
        block = tuple(range(start, start + step))
        return Removal(block, tuple(layer for layer in everything if layer not in block), float(joins[start]))

    return plan


def calibration_criterion(criterion: str, encoded: EncodedSet, calibration: Sequence[Item] | Sequence[str]
                          ) -> Callable[[np.ndarray], float]:
    """:func:`criterion_function` of ``criterion`` on the encoded ``calibration`` set, with its items' gold answers
    (passages have none)."""
    gold = np.array([item.gold for item in calibration]) if criterion != "lm_loss" else None
    return criterion_function(criterion, encoded, gold)


def criterion_function(criterion: str, calibration: EncodedSet, gold: np.ndarray | None) -> Callable[[np.ndarray], float]:
    """scores [n_rows, n_options] -> the criterion: mean DM, accuracy, or mean next-token NLL (nats per token)."""
    if criterion == "dm":
        return lambda scores: float(metrics.mean_decision_margin(scores, gold))
    if criterion == "acc":
        return lambda scores: float(metrics.accuracy(scores, gold))
    if criterion == "lm_loss":  # scores [n_passages, 1]: summed log-likelihood of each passage
        return lambda scores: float(-scores.astype(np.float64).sum() / calibration.n_targets)
    raise ValueError(f"Unknown criterion '{criterion}'; use one of {', '.join(CRITERIA)}")


# --------------------------------------------------------------------------- traces


def _removed_label(removed: Sequence[int]) -> str:
    return " ".join(str(layer) for layer in removed)


def _parse_removed(label: str | None) -> tuple[int, ...]:
    return tuple(int(part) for part in (label or "").split())


@dataclass(frozen=True, eq=False)
class Trace:
    """One pruning run: what each step removed, and the evaluation option scores after it.

    Attributes:
        spec: the full spec (model, dtype, task, split, format, item ids, schedule, criterion, seed, ...).
        removed: per step, the layers removed at that step (original indices); step 0 = ().
        kept: bool [n_steps, n_layers], the layers kept after each step.
        scores: float32 [n_steps, n_items, n_options], evaluation log-probs (step 0 = intact; -inf pads).
        criterion: float64 [n_steps], the schedule's value for each step's choice (NaN where none):
            calibration DM / accuracy / LM loss (iterative), BI (block_influence), angular distance.
        gold: int64 [n_items].
        key: the store key when stored, else None.
        readout: float32 [n_readout_rows, n_items, n_options], the logit-lens readout of every pruned
            network (traces run with ``readout=True``; else None): for each step, the embeddings and then
            every kept layer, in order (:meth:`readout_at`).
        readout_step, readout_layer: int64 [n_readout_rows], the step and the original index of the layer
            read by each row (-1 = the embeddings).
    """

    spec: dict[str, Any]
    removed: tuple[tuple[int, ...], ...]
    kept: np.ndarray
    scores: np.ndarray
    criterion: np.ndarray
    gold: np.ndarray
    key: str | None = None
    readout: np.ndarray | None = None
    readout_step: np.ndarray | None = None
    readout_layer: np.ndarray | None = None

    @property
    def schedule(self) -> str:
        return self.spec["schedule"]

    @property
    def seed(self) -> int | None:
        return self.spec.get("seed")

    @property
    def n_steps(self) -> int:
        return self.kept.shape[0]

    @property
    def n_layers(self) -> int:
        return self.kept.shape[1]

    @property
    def n_removed(self) -> np.ndarray:
        """int64 [n_steps], layers missing after each step."""
        return self.n_layers - self.kept.sum(axis=1)

    @property
    def fraction_removed(self) -> np.ndarray:
        """float64 [n_steps], fraction of the intact model's layers missing after each step."""
        return self.n_removed / self.n_layers

    def kept_layers(self, step: int) -> tuple[int, ...]:
        """Original indices of the layers kept after ``step``."""
        return tuple(int(layer) for layer in np.flatnonzero(self.kept[step]))

    def removal_order(self) -> list[int]:
        """Layers in the order they were removed (nested schedules)."""
        return [layer for removed in self.removed for layer in removed]

    @property
    def has_readout(self) -> bool:
        """Whether the trace holds the layer-wise readout of every pruned network."""
        return self.readout is not None

    def readout_at(self, step: int) -> tuple[tuple[int, ...], np.ndarray]:
        """(original layers read, -1 first = embeddings; scores float32 [n_kept + 1, n_items, n_options]) of ``step``."""
        if self.readout is None:
            raise ValueError("this trace was run without readout=True: it holds no layer-wise readout")
        rows = np.flatnonzero(self.readout_step == step)
        return tuple(int(layer) for layer in self.readout_layer[rows]), self.readout[rows]

    def accuracy(self) -> np.ndarray:
        """float64 [n_steps]."""
        return metrics.accuracy(self.scores, self.gold)

    def mean_dm(self) -> np.ndarray:
        """float64 [n_steps], mean Decision Margin."""
        return metrics.mean_decision_margin(self.scores, self.gold)

    def option_frequency(self) -> np.ndarray:
        """float64 [n_steps, n_options], fraction of items predicting each option."""
        return metrics.option_frequency(self.scores)

    def of_entropy(self) -> np.ndarray:
        """float64 [n_steps], entropy of the option frequency in bits."""
        return metrics.frequency_entropy(self.option_frequency())

    def to_frame(self) -> pd.DataFrame:
        """Long table for Altair: one row per step (step, n_removed, fraction_removed, removed,
        accuracy, mean_dm, of_entropy, criterion, schedule, seed, model, task)."""
        return pd.DataFrame({
            "step": np.arange(self.n_steps),
            "n_removed": self.n_removed,
            "fraction_removed": self.fraction_removed,
            "removed": [_removed_label(removed) for removed in self.removed],
            "accuracy": self.accuracy(),
            "mean_dm": self.mean_dm(),
            "of_entropy": self.of_entropy(),
            "criterion": self.criterion,
            "schedule": self.schedule,
            "seed": self.seed,
            "model": self.spec.get("model"),
            "task": self.spec.get("task"),
        })

    def to_payload(self) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
        """(step table, arrays) as the store keeps them."""
        table = pd.DataFrame({"step": np.arange(self.n_steps), "removed": [_removed_label(r) for r in self.removed],
                              "n_removed": self.n_removed, "fraction_removed": self.fraction_removed,
                              "criterion": self.criterion})
        arrays = {"scores": self.scores, "kept": self.kept, "gold": self.gold}
        if self.readout is not None:
            arrays |= {"readout": self.readout, "readout_step": self.readout_step, "readout_layer": self.readout_layer}
        return table, arrays

    @classmethod
    def from_result(cls, result: Result) -> Trace:
        """The trace held by a stored result."""
        table, arrays = result.table, result.arrays
        return cls(result.spec, tuple(_parse_removed(label) for label in table["removed"]), arrays["kept"],
                   arrays["scores"], table["criterion"].to_numpy(dtype=np.float64), arrays["gold"], result.key,
                   arrays.get("readout"), arrays.get("readout_step"), arrays.get("readout_layer"))

    def save(self, store: Store, audit: Mapping[str, Any] | None = None) -> str:
        """Store the trace under the hash of its spec and of the trace compute version; returns the key."""
        return store.save(TRACE_KIND, self.spec, *self.to_payload(), compute_version=compute_version(TRACE_KIND),
                          audit=audit)

    @classmethod
    def load(cls, store: Store, spec: Mapping[str, Any]) -> Trace | None:
        """The stored trace of ``spec`` at the current trace compute version, or None."""
        result = store.load(TRACE_KIND, spec, compute_version=compute_version(TRACE_KIND))
        return None if result is None else cls.from_result(result)


@dataclass(frozen=True)
class _Step:
    """One evaluated step: the removal, scores [n_items, n_options], readout [n_kept + 1, n_items, n_options] or None."""

    removal: Removal
    scores: np.ndarray
    readout: np.ndarray | None = None


def _trace_from_steps(spec: dict, steps: Sequence[_Step], gold: np.ndarray, n_total: int) -> Trace:
    kept = np.zeros((len(steps), n_total), dtype=bool)
    for index, step in enumerate(steps):
        kept[index, list(step.removal.kept)] = True
    readout = None
    if steps and steps[0].readout is not None:
        readout = (np.concatenate([step.readout for step in steps]).astype(np.float32),
                   np.concatenate([np.full(len(step.readout), index, np.int64) for index, step in enumerate(steps)]),
                   np.concatenate([np.array((-1, *step.removal.kept), np.int64) for step in steps]))
    return Trace(normalize_spec(spec), tuple(step.removal.removed for step in steps), kept,
                 np.stack([step.scores for step in steps]).astype(np.float32),
                 np.array([step.removal.criterion for step in steps], dtype=np.float64),
                 np.asarray(gold, dtype=np.int64), None, *(readout or (None, None, None)))


def _checkpoint_record(step: _Step, n_total: int) -> tuple[dict, dict[str, np.ndarray]]:
    kept = np.zeros(n_total, dtype=bool)
    kept[list(step.removal.kept)] = True
    row = {"removed": _removed_label(step.removal.removed), "n_removed": n_total - len(step.removal.kept),
           "criterion": float(step.removal.criterion)}
    arrays = {"scores": step.scores, "kept": kept}
    return row, arrays if step.readout is None else arrays | {"readout": step.readout}


def _restore_step(row: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> _Step:
    criterion = row.get("criterion")
    removal = Removal(_parse_removed(row.get("removed")), tuple(int(i) for i in np.flatnonzero(arrays["kept"])),
                      math.nan if criterion is None else float(criterion))
    return _Step(removal, arrays["scores"], arrays.get("readout"))


def run_plan(plan: Plan, evaluation: PrefixRunner, gold: np.ndarray, spec: dict, store: Store | None = None,
             progress: bool | str = True, extends: str | None = None) -> Trace:
    """Run a schedule, scoring the evaluation items after every step (checkpointed when ``store`` is given).

    ``extends``: key of the stored shorter trace whose steps the checkpoint starts with (:func:`extend_stored`),
    recorded in the sidecar's audit."""
    n_total = count_layers(evaluation.model)
    start = time.perf_counter()
    checkpoint = (Checkpoint(store, TRACE_KIND, spec, compute_version=compute_version(TRACE_KIND))
                  if store is not None else None)
    steps = [_restore_step(done.row, done.arrays) for done in checkpoint.completed_steps()] if checkpoint else []
    kept = steps[-1].removal.kept if steps else tuple(range(n_total))
    layerwise = bool(spec.get("layer_readout"))
    if steps and not plan.nested and len(steps) < plan.n_steps:  # resumed: every later step starts from step 0's prefix
        evaluation.remember(steps[0].removal.kept, layerwise=layerwise)
    desc = progress if isinstance(progress, str) else spec["schedule"]
    for step in progress_bar(range(len(steps), plan.n_steps), desc, enabled=bool(progress)):
        removal = plan.next(step, kept)
        remember = plan.nested or step == 0
        if layerwise:  # scores [n_items, n_options], readout [n_kept + 1, n_items, n_options]
            done = _Step(removal, *evaluation.run_layerwise(removal.kept, remember=remember))
        else:
            done = _Step(removal, evaluation.run(removal.kept, remember=remember))
        if checkpoint is not None:
            checkpoint.append_step(step, *_checkpoint_record(done, n_total))
        steps.append(done)
        kept = removal.kept
    trace = _trace_from_steps(spec, steps, gold, n_total)
    if checkpoint is None:
        return trace
    audit = audit_record(TRACE_KIND, device=str(model_device(evaluation.model)), dtype=spec.get("dtype"),
                         token_budget=evaluation.encoded.token_budget, wall_s=time.perf_counter() - start)
    if extends is not None:
        audit["extends"] = extends
    return Trace.from_result(checkpoint.finalize(*trace.to_payload(), audit=audit))


def extend_stored(store: Store, spec: Mapping[str, Any]) -> str | None:
    """Start the checkpoint of the trace ``spec`` with the steps of its longest stored shorter version.

    Every planner's removal at step s depends only on the steps before it, never on how many steps the trace
    runs, so the trace with ``n_remove = m`` is the first m + 1 steps of the one with a larger ``n_remove``: a longer
    trace (phase-targeted k up to 6 after k up to 2) continues where the stored one ends instead of recomputing
    it. Returns the key of the trace it continues, or None (nothing stored, or the checkpoint is further already).
    """
    checkpoint = Checkpoint(store, TRACE_KIND, spec, compute_version=compute_version(TRACE_KIND))
    done = len(checkpoint.completed_steps())
    for n_remove in range(int(spec["n_remove"]) - 1, done - 1, -1):
        shorter = Trace.load(store, {**spec, "n_remove": n_remove})
        if shorter is None:
            continue
        n_total = shorter.n_layers
        for step in range(done, shorter.n_steps):
            removal = Removal(shorter.removed[step], shorter.kept_layers(step), float(shorter.criterion[step]))
            readout = shorter.readout_at(step)[1] if shorter.has_readout else None
            checkpoint.append_step(step, *_checkpoint_record(_Step(removal, shorter.scores[step], readout), n_total))
        return shorter.key
    return None


# --------------------------------------------------------------------------- specs


def model_identity(model: nn.Module) -> str:
    """The model's short name or Hub id (set by ``load_model``), else its class and a hash of its config.

    The fallback does not see the weights: name models you build yourself
    (``model.layercollapse_name = ...``) before storing their traces.
    """
    name = getattr(model, "layercollapse_name", None)
    if name:
        return str(name)
    config = model.config.to_json_string(use_diff=False)
    return f"{type(model).__name__}:{hashlib.sha256(config.encode()).hexdigest()[:16]}"


def _calibration_ids(calibration: Sequence[Item] | Sequence[str]) -> list[str]:
    """Item ids, or ``sha256:<16 hex>`` of each passage."""
    return [entry.id if isinstance(entry, Item) else "sha256:" + hashlib.sha256(entry.encode()).hexdigest()[:16]
            for entry in calibration]


def trace_spec(model: nn.Module, schedule: str, evaluation: Sequence[Item], calibration: Sequence[Item] | Sequence[str],
               *, criterion: str | None, seed: int | None, layers: Sequence[int] | None, n_remove: int,
               format: str, task: str | None, split: str | None, readout: bool = False,
               shots: Sequence[Item] = ()) -> dict[str, Any]:
    """The full spec of a trace, whose hash keys it in the store (with the trace compute version).

    ``readout``: the trace also holds the logit-lens readout of every pruned network; the field
    ``layer_readout: "logit"`` is then added (absent otherwise, so traces without it keep their keys).
    ``shots``: the solved examples of k-shot letter prompts; their ids are recorded as ``shot_ids``
    (absent for zero-shot traces, which keep their keys).
    """
    dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
    return {
        "model": model_identity(model),
        "dtype": dtype,
        **readout_spec(readout_of(model), dtype),
        "n_layers": count_layers(model),
        "task": task,
        "split": split,
        "format": format,
        "evaluation_ids": [item.id for item in evaluation],
        "calibration_ids": _calibration_ids(calibration),
        "schedule": schedule,
        "criterion": criterion,
        "seed": seed,
        "layers": None if layers is None else list(layers),
        "n_remove": n_remove,
        **({"layer_readout": "logit"} if readout else {}),
        **shots_spec(shots),
    }


def most_removable(schedule: str, n_total: int, layers: Sequence[int] | None) -> int:
    """Layers a trace removes by default: all but one, or every range layer (``random_in_range``)."""
    return min(len(layers or ()), n_total - 1) if schedule == "random_in_range" else n_total - 1


def _check_arguments(schedule: str, evaluation: Sequence[Item], calibration: Sequence[Item] | Sequence[str],
                     criterion: str, layers: Sequence[int] | None, n_total: int, format: str,
                     shots: Sequence[Item]) -> None:
    if schedule not in SCHEDULES:
        raise ValueError(f"Unknown schedule '{schedule}'; use one of {', '.join(SCHEDULES)}")
    if not evaluation:
        raise ValueError("no evaluation items")
    if schedule in GREEDY and criterion not in CRITERIA:
        raise ValueError(f"Unknown criterion '{criterion}'; use one of {', '.join(CRITERIA)}")
    if schedule in USES_CALIBRATION and not calibration:
        raise ValueError(f"schedule '{schedule}' needs calibration items (or passages)")
    passages = [entry for entry in calibration if isinstance(entry, str)]
    if passages and len(passages) != len(calibration):
        raise ValueError("calibration mixes items and passages")
    if schedule in GREEDY and (criterion == "lm_loss") != bool(passages):
        raise ValueError("criterion 'lm_loss' takes calibration passages (strings); 'dm' and 'acc' take items")
    shared = {entry.id for entry in calibration if isinstance(entry, Item)} & {item.id for item in evaluation}
    if shared:
        raise ValueError(f"calibration and evaluation items overlap ({len(shared)} shared, e.g. '{min(shared)}')")
    if shots and format != "letter":
        raise ValueError(f"shots apply only to the letter format, not to '{format}' (cloze prompts are zero-shot)")
    solved = {shot.id for shot in shots} & ({item.id for item in evaluation}
                                            | {entry.id for entry in calibration if isinstance(entry, Item)})
    if solved:
        raise ValueError(f"{len(solved)} solved example(s) are also evaluation or calibration items, e.g. '{min(solved)}'")
    if schedule in USES_LAYERS:
        if not layers:
            what = "the index range to remove from" if schedule == "random_in_range" else "the layers to remove first"
            raise ValueError(f"schedule '{schedule}' needs layers ({what})")
        validate_layer_indices(layers, n_total, "range layer")


def _use_cache(model: nn.Module, cache: bool | str, sets: Mapping[str, EncodedSet]) -> dict[str, bool]:
    if cache != "auto":
        return {name: bool(cache) for name in sets}
    parameter = next(model.parameters())
    return plan_prefix_cache({name: encoded.n_tokens for name, encoded in sets.items()}, count_layers(model),
                             model.config.hidden_size, parameter.element_size(), memory_budget(parameter.device))


def prune(model: nn.Module, tokenizer, evaluation: Sequence[Item], schedule: str = "iterative", *, seed: int = 0,
          **options: Any) -> Trace:
    """Prune ``model`` step by step with ``schedule`` and score the evaluation items after every step: one
    :func:`prune_seeds` trace, whose keyword arguments (``calibration``, ``criterion``, ``layers``, ``n_remove``,
    ``format``, ``task``, ``split``, ``store``, ``cache``, ``token_budget``, ``readout``, ``shots``, ``progress``)
    ``options`` are.

    Args:
        seed: seed of ``random`` / ``random_in_range`` (numpy ``default_rng``).
    Returns:
        :class:`Trace`, with n_remove + 1 steps.
    """
    return prune_seeds(model, tokenizer, evaluation, schedule, (seed,), **options)[0]


def _plan(schedule: str, seed: int, n_steps: int, n_total: int, model: nn.Module, sets: Mapping[str, EncodedSet],
          use_cache: Mapping[str, bool], calibration: Sequence[Item] | Sequence[str], criterion: str,
          layers: Sequence[int] | None) -> Plan:
    """The :class:`Plan` of one trace (the planners above, fed by the encoded sets)."""
    if schedule in GREEDY:
        runner = PrefixRunner(model, sets["calibration"], use_cache["calibration"])
        return Plan(greedy_planner(runner, calibration_criterion(criterion, sets["calibration"], calibration),
                                   CRITERIA[criterion], first=layers if schedule == "decisive_first" else ()), n_steps)
    if schedule == "block_influence":
        influence = block_influence(model, sets["calibration"])  # [n_layers]
        order = np.argsort(influence, kind="stable")
        return Plan(order_planner(order, influence[order]), n_steps)
    if schedule == "angular_distance":
        return Plan(block_planner(angular_distances(model, sets["calibration"])), n_steps, nested=False)
    if schedule == "reverse":
        return Plan(order_planner(range(n_total - 1, -1, -1)), n_steps)
    if schedule == "random":
        return Plan(order_planner(np.random.default_rng(seed).permutation(n_total)), n_steps)
    # random_in_range: a few steps, each run from the intact network's prefix, which stays cached for the next seed
    return Plan(order_planner(np.random.default_rng(seed).permutation(sorted(layers))), n_steps, nested=False)


def prune_seeds(
    model: nn.Module,
    tokenizer,
    evaluation: Sequence[Item],
    schedule: str,
    seeds: Sequence[int],
    *,
    calibration: Sequence[Item] | Sequence[str] = (),
    criterion: str = "dm",
    layers: Sequence[int] | None = None,
    n_remove: int | None = None,
    format: str = "letter",
    task: str | None = None,
    split: str | None = None,
    store: Store | None = None,
    cache: bool | str = "auto",
    token_budget: int | None = None,
    readout: bool = False,
    shots: Sequence[Item] = (),
    progress: bool | str = True,
    intact: IntactPrefixes | None = None,
) -> list[Trace]:
    """Prune ``model`` step by step with ``schedule`` and score the evaluation items after every step, once per seed,
    sharing the tokenised items and the prefix cache (:func:`prune`: one seed).

    ``random_in_range`` runs every step from the intact network's cached prefix, so the intact
    network runs once for all seeds instead of once per seed. Stored traces are returned as they are.

    Args:
        evaluation: items scored at every step (step 0 = the intact model).
        schedule: one of :data:`SCHEDULES`.
        calibration: items (``dm``, ``acc``; BI and angular distance read their prompts) or
            passages (``lm_loss``; BI and angular distance then read the passages), disjoint
            from ``evaluation``. Unused by reverse / random schedules.
        criterion: greedy criterion of ``iterative`` and ``decisive_first``: "dm" (mean Decision Margin, default),
            "acc" (accuracy), "lm_loss" (mean next-token NLL of the passages, nats/token).
        seeds: seeds of ``random`` / ``random_in_range`` (numpy ``default_rng``), one trace each.
        layers: ``random_in_range``: original indices to remove from; ``decisive_first``: the layers
            removed first (greedily among themselves), before all others.
        n_remove: removal steps to run; default: until one layer is left
            (``random_in_range``: until the range is exhausted or one layer is left).
        format, task: prompt format and task template, as in ``scoring.score``.
        split: name of the items' split, recorded in the spec.
        store: when given, a stored trace with the same spec is returned as is; otherwise the run
            checkpoints every step there (a killed run resumes) and stores the trace.
        cache: prefix caching: True, False (recompute every subnetwork from the embeddings),
            or "auto" (cache what fits :func:`memory_budget`, see :func:`plan_prefix_cache`).
        token_budget: rows x padded length per batch (None: the device's default).
        readout: also record the logit-lens readout of every pruned network (``Trace.readout_at``):
            the read positions of each layer run by the evaluation pass are unembedded, nothing else
            is run again (cost: ``benchmarks/readout_along_traces.py``).
        shots: letter format: solved examples prepended to every evaluation and calibration prompt
            (``tasks.fewshot_examples``; disjoint from both), recorded in the spec as ``shot_ids``.
        intact: the intact network's pass, shared with other calls on the same model and items
            (:class:`IntactPrefixes`); None: run at step 0 (once for all ``seeds``).
    Returns:
        one :class:`Trace` per seed, each with n_remove + 1 steps. With a store, a trace whose shorter version
        (the same spec with a smaller ``n_remove``) is stored continues from it (:func:`extend_stored`).
    """
    check_format(format)
    n_total = count_layers(model)
    _check_arguments(schedule, evaluation, calibration, criterion, layers, n_total, format, shots)
    if schedule not in USES_CALIBRATION:
        calibration = ()
    most = most_removable(schedule, n_total, layers)
    n_remove = most if n_remove is None else n_remove
    if not 0 <= n_remove <= most:
        raise ValueError(f"n_remove={n_remove} is outside 0..{most} for schedule '{schedule}' on {n_total} layers")
    specs = [trace_spec(model, schedule, evaluation, calibration,
                        criterion=criterion if schedule in GREEDY else None,
                        seed=seed if schedule in USES_SEED else None,
                        layers=sorted(layers) if schedule in USES_LAYERS else None,
                        n_remove=n_remove, format=format, task=task, split=split, readout=readout, shots=shots)
             for seed in seeds]
    traces = [Trace.load(store, spec) if store is not None else None for spec in specs]
    if all(trace is not None for trace in traces):
        return traces

    sets = {}
    if calibration:
        # BI and angular distance average over sequences' tokens / last tokens: one sequence per option
        per_sequence = schedule in ("block_influence", "angular_distance")
        sets["calibration"] = encode_calibration(model, tokenizer, calibration, format, task, token_budget,
                                                 shared_context=not per_sequence, shots=shots)
    sets["evaluation"] = encode_items(model, tokenizer, evaluation, format, task, token_budget, shots=shots)
    use_cache = _use_cache(model, cache, sets if schedule in GREEDY else {"evaluation": sets["evaluation"]})
    if intact is not None and use_cache["evaluation"]:
        evaluation_runner = intact.runner(model, sets["evaluation"],
                                          intact_key(model, specs[0], sets["evaluation"].token_budget), readout)
    else:
        evaluation_runner = PrefixRunner(model, sets["evaluation"], use_cache["evaluation"])
    gold = np.array([item.gold for item in evaluation])
    for index, (seed, spec) in enumerate(zip(seeds, specs)):
        if traces[index] is None:
            extends = extend_stored(store, spec) if store is not None else None
            plan = _plan(schedule, seed, n_remove + 1, n_total, model, sets, use_cache, calibration, criterion, layers)
            desc = progress if isinstance(progress, str) or len(seeds) == 1 else f"{schedule} seed {seed}"
            traces[index] = run_plan(plan, evaluation_runner, gold, spec, store, progress and desc, extends=extends)
    return traces


def find_trace(store: Store, spec: Mapping[str, Any], *, n_remove: int | None = None,
               damaged: str = "warn") -> Trace | None:
    """The stored trace whose full spec is ``spec`` completed by ``n_layers`` and ``n_remove``, or None.

    For callers that know every field of :func:`trace_spec` but the model's depth (found without
    loading its weights): each stored trace's own ``n_layers`` completes the spec, ``n_remove``
    defaults to :func:`most_removable` for that depth, and the completed spec must equal the stored
    one exactly, so a shorter trace, or one with an extra or missing field, is never returned.
    """
    for trace in iter_traces(store, damaged=damaged, **spec):
        n_total = trace.spec.get("n_layers")
        if not isinstance(n_total, int):
            continue
        wanted = {**spec, "n_layers": n_total,
                  "n_remove": most_removable(spec["schedule"], n_total, spec.get("layers")) if n_remove is None
                  else n_remove}
        if normalize_spec(wanted) == trace.spec:
            return trace
    return None


def iter_traces(store: Store, *, any_code: bool = False, damaged: str = "warn", **where: Any) -> Iterator[Trace]:
    """Stored traces whose spec has every ``field == value`` of ``where`` (e.g. ``schedule="random"``).

    Only traces the store would serve (the current trace compute version, :func:`provenance.is_current`),
    unless ``any_code``. ``damaged``: a trace whose files are damaged is skipped with a warning
    (``"warn"``) or raises ``store.CorruptResultError`` (``"raise"``).
    """
    for sidecar in store.sidecars(TRACE_KIND, damaged=damaged):
        spec = sidecar.get("spec", {})
        if not any_code and not is_current(TRACE_KIND, sidecar.get("compute_version")):
            continue
        if all(spec.get(name) == value for name, value in where.items()):
            result = store.load_key(TRACE_KIND, sidecar["key"], damaged=damaged)
            if result is not None:
                yield Trace.from_result(result)
