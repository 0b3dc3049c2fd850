"""Running pruned networks fast: the prefix cache, the readout queue and the intact pass shared between traces.

A :class:`PrefixRunner` remembers the residual stream entering every layer of one network; a
subnetwork that first differs from it at layer j starts from the remembered input of j
(``inputs_embeds``), so the layers before j are not recomputed. :func:`plan_prefix_cache` decides
from the memory budget which item sets get such a cache; the others are recomputed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from layercollapse.model.hooks import hook_layers
from layercollapse.model.layers import keep_layers
from layercollapse.model.layers import n_layers as count_layers
from layercollapse.pruning.encoding import EncodedSet
from layercollapse.readout.batching import Batch
from layercollapse.readout.scoring import read_positions, readout_logprobs, run_backbone, scatter_scores
from torch import nn

READOUT_CHUNK = 1024  # read positions unembedded at once: [chunk, vocab] logits are the memory peak
CACHE_MEMORY_FRACTION = 0.5  # of free GPU memory / available RAM that prefix caches may fill


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
