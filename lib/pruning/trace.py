"""Traces: what each step of a schedule removed and what the pruned network answered, stored and resumable.

A :class:`Trace` holds every step of one pruning run (step 0 = the intact network): the layers removed,
the evaluation scores and, where recorded, the logit-lens readout of every pruned network.
:func:`run_plan` runs a :class:`~layercollapse.pruning.schedules.Plan` and checkpoints every step
(``store.Checkpoint``): a killed run resumes at its first missing step, a longer trace continues its
stored shorter version (:func:`extend_stored`), and a trace is keyed by a hash of its full spec
(:func:`trace_spec`, the one function that builds it).
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from layercollapse.data.prompts import shots_spec
from layercollapse.data.tasks import Item
from layercollapse.measures import metrics
from layercollapse.model.architectures import readout_of, readout_spec
from layercollapse.model.layers import n_layers as count_layers
from layercollapse.progress import progress_bar
from layercollapse.pruning.encoding import encode_passages
from layercollapse.pruning.prefix import PrefixRunner
from layercollapse.pruning.schedules import Plan, Removal, get_schedule
from layercollapse.readout.batching import model_device
from layercollapse.storage.provenance import audit_record, compute_version, is_current
from layercollapse.storage.store import Checkpoint, Result, Store, normalize_spec
from torch import nn

TRACE_KIND = "trace"


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
    def load(cls, store: Store, spec: Mapping[str, Any], damaged: str = "warn") -> Trace | None:
        """The stored trace of ``spec`` at the current trace compute version, or None (``damaged``: see
        ``Store.load``)."""
        result = store.load(TRACE_KIND, spec, compute_version=compute_version(TRACE_KIND), damaged=damaged)
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


# --------------------------------------------------------------------------- specs


@dataclass(frozen=True)
class NetworkIdentity:
    """What a trace's spec records of the network it prunes: found on the module (:meth:`of`), or known without
    loading its weights (a profile's model: its short name, the profile's dtype and readout, its depth).

    Attributes:
        name: the short name or Hub id (:func:`model_identity`).
        dtype: the weights' dtype as torch names it ("bfloat16", "float32").
        readout: ``"float32"`` or ``"model"`` (``architectures.set_readout``).
        n_layers: decoder layers of the intact network.
    """

    name: str
    dtype: str
    readout: str
    n_layers: int

    @classmethod
    def of(cls, model: nn.Module) -> NetworkIdentity:
        return cls(model_identity(model), str(next(model.parameters()).dtype).removeprefix("torch."),
                   readout_of(model), count_layers(model))


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


def trace_spec(network: NetworkIdentity | nn.Module, schedule: str, evaluation: Sequence[Item],
               calibration: Sequence[Item] | Sequence[str] = (), *, criterion: str = "dm", seed: int = 0,
               layers: Sequence[int] | None = None, n_remove: int | None = None, format: str = "letter",
               task: str | None = None, split: str | None = None, readout: bool = False,
               shots: Sequence[Item] = ()) -> dict[str, Any]:
    """The full spec of a trace, whose hash keys it in the store (with the trace compute version): the one place
    that builds it, for the pruner and for every reader that looks a trace up.

    What the schedule does not use is recorded as nothing (no calibration ids; criterion, seed and layers None),
    so that one trace has one key however it is asked for. ``n_remove`` None: the schedule's default
    (``Schedule.most_removable``). ``readout``: the trace also holds the logit-lens readout of every pruned network;
    the field ``layer_readout: "logit"`` is then added (absent otherwise, so traces without it keep their keys).
    ``shots``: the solved examples of k-shot prompts (letter or cloze); their ids are recorded as ``shot_ids`` (absent for
    zero-shot traces, which keep their keys).
    """
    network = network if isinstance(network, NetworkIdentity) else NetworkIdentity.of(network)
    recipe = get_schedule(schedule)
    return {
        "model": network.name,
        "dtype": network.dtype,
        **readout_spec(network.readout, network.dtype),
        "n_layers": network.n_layers,
        "task": task,
        "split": split,
        "format": format,
        "evaluation_ids": [item.id for item in evaluation],
        "calibration_ids": _calibration_ids(calibration if recipe.calibration else ()),
        "schedule": schedule,
        "criterion": criterion if recipe.greedy else None,
        "seed": seed if recipe.seeded else None,
        "layers": sorted(layers) if recipe.layers and layers is not None else None,
        "n_remove": recipe.most_removable(network.n_layers, layers) if n_remove is None else n_remove,
        **({"layer_readout": "logit"} if readout else {}),
        **shots_spec(shots),
    }


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

