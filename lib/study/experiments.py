"""Experiments of a profile: spec -> stored result, computed once.

Every chapter and ``python -m layercollapse reproduce`` go through :class:`Experiments`:
each method builds the full spec of one experiment (model, dtype, task, split, item
ids, method parameters), loads its result from the store when present, and otherwise
computes and stores it. A result is keyed by that spec and the compute version of its kind
(``provenance.COMPUTE_VERSIONS``, kept honest by golden-output tests), so a result whose
numbers the code would now compute differently is recomputed, never served stale. Layer
indices are always those of the intact model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
from layercollapse import settings
from layercollapse.data.prompts import shots_spec
from layercollapse.data.tasks import (
    Item,
    load_task,
    subsample,
)
from layercollapse.measures import metrics
from layercollapse.measures.phases import Phases, Readout, phases_from_readout
from layercollapse.storage.provenance import audit_record, compute_version
from layercollapse.storage.store import Result, Store, cached
from layercollapse.study.items import (
    evaluation_split,
    items_by_id,
    split_items,
    text_passages,
)
from layercollapse.study.profiles import Profile, load_profile


def evenly_spaced(layers: Sequence[int], n: int) -> list[int]:
    """``n`` layers spread evenly over ``layers``, ends included (one: the middle; all when there are fewer)."""
    if len(layers) <= n:
        return list(layers)
    if n == 1:
        return [layers[len(layers) // 2]]
    return [layers[int(i)] for i in np.linspace(0, len(layers) - 1, n).round()]


#: Single-trace schedules run on the main model too (the pruning model runs the profile's ``schedules``): the
#: deterministic cliff-edge schedules and the phase-aware ``decisive_first``; one trace each, on the pruning items.
#: Random orders (one trace per seed) run on both models where the profile's ``schedules`` has ``random``.
MAIN_SCHEDULES = ("iterative", "block_influence", "angular_distance", "reverse", "decisive_first")


#: Main-model schedules that read the intact network's phases (its readout) before they run.
PHASE_AWARE = ("decisive_first",)


#: Environment variable that lets a chapter compute missing results ("1"); set by ``render --compute``.
COMPUTE_ENV = settings.COMPUTE.name


def compute_allowed() -> bool:
    """Whether missing results may be computed here: ``$LAYERCOLLAPSE_COMPUTE`` is "1"."""
    return settings.compute_allowed()


class MissingResult(LookupError):
    """A result the chapter needs is not stored and computing is off; the message says how to compute it."""

    def __init__(self, kind: str, spec: dict[str, Any], profile: str) -> None:
        what = " / ".join(str(spec[field]) for field in ("model", "task") if field in spec)
        super().__init__(f"the '{kind}' result for {what} is not stored (profile '{profile}'): compute it with "
                         f"`python -m layercollapse reproduce --profile {profile}`, or render with --compute")


class _Memory:
    """The one model an :class:`Experiments` holds in memory (name, model, tokenizer), and the intact passes its traces
    share (``pruning.IntactPrefixes``); one object shared with the per-setting experiments it derives
    (:meth:`Experiments.for_setting`), so that settings of one model load it once."""

    def __init__(self) -> None:
        self.loaded: tuple[str, Any, Any] | None = None
        self.intact = None


class Experiments:
    """The experiments of one profile, over one results store.

    Holds at most one model in memory; methods load it on demand. Every result is read
    from the store when present; ``compute=False`` turns a missing result into an error
    instead (rendering must not start hours of computation silently).
    """

    def __init__(self, profile: Profile | str | None = None, store: Store | None = None, compute: bool | None = None,
                 progress: bool = True, load_model: Callable[..., tuple[Any, Any]] | None = None,
                 repair: bool = False) -> None:
        """Args:
            compute: compute missing results (None: only when ``$LAYERCOLLAPSE_COMPUTE`` is 1, which
                ``reproduce`` and ``render --compute`` set; a chapter otherwise never starts a run).
            repair: recompute a stored result whose files are damaged (with ``compute``; ``reproduce
                --repair``). Otherwise a damaged result raises ``store.CorruptResultError``: replacing a
                committed result is never a side effect.
            load_model: ``(name, dtype=...) -> (model, tokenizer)``; default ``models.load_model``
                (tests pass tiny random models through it).
        """
        self.profile = profile if isinstance(profile, Profile) else load_profile(profile)
        self.store = store or Store(profile=self.profile.name)
        self.compute = compute_allowed() if compute is None else compute
        self.repair = repair
        self.progress = progress
        self._load_model = load_model
        self._memory = _Memory()
        self._shots: dict[str, tuple[Item, ...]] = {}

    def for_setting(self, setting) -> Experiments:
        """The experiments of one setting (``profiles.Setting``): this profile narrowed to it
        (``Profile.setting_profile``), over the same store, sharing the loaded model. Its ``readout()``, ``phases()``,
        ``phase_traces(...)``, ``main_trace(...)`` and ``random_traces()`` are the setting's."""
        derived = Experiments(self.profile.setting_profile(setting), store=self.store, compute=self.compute,
                              progress=self.progress, load_model=self._load_model, repair=self.repair)
        derived._memory = self._memory
        return derived

    def on_store(self, store: Store, *, compute: bool) -> Experiments:
        """The same experiments (profile, model loader, progress) over another store."""
        return Experiments(self.profile, store=store, compute=compute, progress=self.progress,
                           load_model=self._load_model, repair=self.repair)

    @property
    def damaged(self) -> str:
        """What a stored result with damaged files does (``Store.load``): recomputed only when repairing."""
        return "warn" if self.repair else "raise"

    # ------------------------------------------------------------------ inputs

    def loaded_model(self, name: str):
        """(model, tokenizer) of the model ``name`` of the profile, loaded once (study code calls short names
        ``model_name`` and the loaded ``nn.Module`` ``model``)."""
        memory = self._memory
        if memory.loaded is None or memory.loaded[0] != name:
            from layercollapse.model.architectures import set_readout
            from layercollapse.model.loading import load_model

            memory.loaded = memory.intact = None
            dtype = None if self.profile.dtype == "auto" else self.profile.dtype
            model, tokenizer = (self._load_model or load_model)(name, dtype=dtype)
            set_readout(model, self.profile.readout)
            memory.loaded = (name, model, tokenizer)
        return memory.loaded[1], memory.loaded[2]

    def dtype_name(self) -> str:
        """The weights dtype the profile asks for, as torch names it ("bfloat16", "float32"), recorded in specs."""
        from layercollapse.model.loading import default_device, resolve_dtype

        dtype = None if self.profile.dtype == "auto" else self.profile.dtype
        return str(resolve_dtype(dtype, default_device())).removeprefix("torch.")

    def split(self, task: str) -> str:
        return evaluation_split(task, self.profile.eval_split)

    def items(self, task: str, n_items: int | None = None, n_calibration: int | None = None
              ) -> tuple[tuple[Item, ...], tuple[Item, ...], tuple[Item, ...]]:
        """(calibration, evaluation, training) items of a task: disjoint, seeded by the profile's first seed."""
        return split_items(load_task(task, self.split(task)).items,
                           self.profile.n_items if n_items is None else n_items,
                           self.profile.n_calibration if n_calibration is None else n_calibration, self.profile.seeds[0])

    def evaluation(self, task: str, n_items: int | None = None) -> tuple[Item, ...]:
        return self.items(task, n_items)[1]

    def passages(self) -> list[str]:
        """Plain-text passages for the language-model loss control (no decision structure)."""
        return text_passages(self.profile.text_corpus, self.profile.n_text_passages)

    def shots(self, task: str, format: str) -> tuple[Item, ...]:
        """The solved examples of the profile's k-shot prompts for ``task`` (none for ``shots: 0``):
        ``tasks.fewshot_examples`` drawn by the first seed, disjoint from every item the profile scores of ``task``.
        ``format``: the prompt format (letter and cloze prompts both take them)."""
        if not self.profile.shots:
            return ()
        if task not in self._shots:
            from layercollapse.data.tasks import fewshot_examples

            # the calibration and evaluation items of both item sets (not the training remainder: on a task whose
            # few-shot split is its evaluation split, HellaSwag's, that is every other item)
            used = [item for split in (self.items(task), self.items(task, self.profile.n_pruning_items,
                                                                   self.profile.n_pruning_calibration))
                    for part in split[:2] for item in part]
            self._shots[task] = fewshot_examples(task, self.profile.shots, self.profile.seeds[0], exclude=used)
        return self._shots[task]

    def shots_of(self, spec: dict[str, Any]) -> tuple[Item, ...]:
        """The solved examples a stored result's prompts were built with (its ``shot_ids``, from :meth:`shots`)."""
        shots = self.shots(spec["task"], spec["format"])
        if [shot.id for shot in shots] != spec.get("shot_ids", []):
            raise ValueError(f"the result was scored with shots {spec.get('shot_ids', [])}, profile "
                             f"'{self.profile.name}' draws {[shot.id for shot in shots]}")
        return shots

    def readout_spec(self) -> dict[str, str]:
        """The readout precision's spec entry (``architectures.readout_spec``): empty for the model's dtype."""
        from layercollapse.model.architectures import readout_spec

        return readout_spec(self.profile.readout, self.dtype_name())

    def _base_spec(self, model_name: str, task: str, items: Sequence[Item], format: str) -> dict[str, Any]:
        return {"model": model_name, "dtype": self.dtype_name(), **self.readout_spec(), "task": task,
                "split": self.split(task), "format": format, "item_ids": [item.id for item in items],
                **shots_spec(self.shots(task, format))}

    def _cached(self, kind: str, spec: dict[str, Any], compute) -> Result:
        version = compute_version(kind)
        if not self.compute:
            stored = self.store.load(kind, spec, compute_version=version, damaged=self.damaged)
            if stored is None:
                raise MissingResult(kind, spec, self.profile.name)
            return stored

        def audit(wall_s: float) -> dict[str, Any]:
            from layercollapse.readout.batching import model_device
            from layercollapse.readout.budget import default_token_budget

            device = model_device(self._memory.loaded[1]) if self._memory.loaded else None
            return audit_record(kind, device=None if device is None else str(device), dtype=self.dtype_name(),
                                token_budget=None if device is None else default_token_budget(device), wall_s=wall_s)

        return cached(self.store, kind, spec, compute, compute_version=version, audit=audit, damaged=self.damaged)

    # ---------------------------------------------------------------- readouts

    def readout(self, model_name: str | None = None, task: str | None = None) -> Readout:
        """Logit-lens readout of the intact network at every layer."""
        model_name = model_name or self.profile.main_model
        task = task or self.profile.tasks[0]
        format = self.profile.run_of(model_name).format
        items = self.evaluation(task)
        spec = self._readout_spec(model_name, task)

        def compute() -> dict[str, np.ndarray]:
            from layercollapse.readout.lens import layerwise_scores

            model, tokenizer = self.loaded_model(model_name)
            scores = layerwise_scores(model, tokenizer, items, format, task=task, shots=self.shots(task, format),
                                      progress=self.progress and "readout")
            return {"scores": scores, "gold": np.array([item.gold for item in items])}

        result = self._cached("readout", spec, compute)
        return Readout(result.arrays["scores"], result.arrays["gold"], result.spec)

    def _readout_spec(self, model_name: str, task: str) -> dict[str, Any]:
        format = self.profile.run_of(model_name).format
        return {"experiment": "readout", "lens": "logit",
                **self._base_spec(model_name, task, self.evaluation(task), format)}

    def phases(self, model_name: str | None = None, task: str | None = None) -> Phases:
        """Silent / Decisive split of a network from its readout (bootstrap over items)."""
        return phases_from_readout(self.readout(model_name, task), n_resamples=self.profile.n_bootstrap,
                                   seed=self.profile.seeds[0])

    def tuned_readout(self, model_name: str | None = None, task: str | None = None) -> tuple[Readout, pd.DataFrame]:
        """Tuned-lens readout of the intact network, and KL to the final layer per depth for both lenses.

        The translators train on the profile's plain-text passages (not on task items);
        KL is measured on held-out passages.
        """
        model_name = model_name or self.profile.main_model
        task = task or self.profile.tasks[0]
        format = self.profile.run_of(model_name).format
        items = self.evaluation(task)
        texts = self.passages()
        spec = {"experiment": "tuned_readout", "lens": "tuned", "steps": self.profile.tuned_lens_steps,
                "max_tokens": self.profile.tuned_lens_tokens, "corpus": self.profile.text_corpus,
                "n_passages": len(texts), **self._base_spec(model_name, task, items, format)}

        def compute():
            from layercollapse.readout.tuned_lens import tuned_readout

            model, tokenizer = self.loaded_model(model_name)
            table, scores = tuned_readout(model, tokenizer, items, texts, format, task,
                                          steps=self.profile.tuned_lens_steps, max_tokens=self.profile.tuned_lens_tokens,
                                          seed=self.profile.seeds[0], shots=self.shots(task, format),
                                          progress=self.progress)
            return table, {"scores": scores, "gold": np.array([item.gold for item in items])}

        result = self._cached("tuned_lens", spec, compute)
        return Readout(result.arrays["scores"], result.arrays["gold"], result.spec), result.table

    # ----------------------------------------------------------------- pruning

    def trace(self, schedule: str, seed: int = 0, model_name: str | None = None, task: str | None = None,
              criterion: str = "dm", n_items: int | None = None):
        """A pruning trace of the profile's pruning model (see ``pruning.prune``)."""
        return self.traces(schedule, (seed,), model_name, task, criterion, n_items)[0]

    def traces(self, schedule: str, seeds: Sequence[int], model_name: str | None = None, task: str | None = None,
               criterion: str = "dm", n_items: int | None = None) -> list:
        """Pruning traces of the profile's pruning model, one per seed (see ``pruning.prune_seeds``)."""
        model_name = model_name or self.profile.pruning_model
        task = task or self.profile.pruning_task
        calibration, evaluation, _ = self.items(task, n_items or self.profile.n_pruning_items,
                                                self.profile.n_pruning_calibration)
        return self._traces(model_name, task, evaluation, schedule, seeds, calibration=calibration, criterion=criterion)

    def network(self, name: str):
        """What a trace's spec records of the model ``name`` (``pruning.NetworkIdentity``), without loading its
        weights where its depth is known (``loading.model_depth``); else from the loaded model."""
        from layercollapse.model.loading import model_depth
        from layercollapse.pruning.trace import NetworkIdentity

        if self._memory.loaded is not None and self._memory.loaded[0] == name:
            return NetworkIdentity.of(self._memory.loaded[1])
        n_layers = model_depth(name) or self._stored_depth(name)
        if n_layers is None:
            return NetworkIdentity.of(self.loaded_model(name)[0])
        return NetworkIdentity(name, self.dtype_name(), self.profile.readout, n_layers)

    def _stored_depth(self, name: str) -> int | None:
        """Decoder layers of one of the profile's models, read from the sidecar of its stored readout on the main task
        (a model that only a loader knows, e.g. a test's tiny model; the readout itself is not read, so the trace
        does not count it among its inputs); None when that readout is not stored."""
        if name not in {run.name for run in self.profile.models}:
            return None
        sidecar = self.store.sidecar("readout", self._readout_spec(name, self.profile.tasks[0]),
                                     compute_version=compute_version("readout"), damaged=self.damaged)
        shape = ((sidecar or {}).get("arrays") or {}).get("scores", {}).get("shape")
        return None if not shape else int(shape[0]) - 1  # scores: [n_layers + 1, n_items, n_options]

    def _traces(self, model_name: str, task: str, evaluation: Sequence[Item], schedule: str, seeds: Sequence[int], *,
                calibration: Sequence[Item] = (), criterion: str = "dm",
                layers: Sequence[int] | None = None, n_remove: int | None = None,
                readout: bool | None = None) -> list:
        """Stored traces with these specs, the missing ones (``compute=True``) from ``pruning.prune_seeds``.

        ``readout``: record the logit-lens readout of every pruned network. None: letter-format traces do (it costs
        ~1.0x: one read position per item, ``benchmarks/readout_along_traces.py``), cloze traces do not (1.5-2.6x:
        every continuation position goes through the vocabulary product); the phase-targeted traces always do
        (C5b and C5c read it)."""
        from layercollapse.pruning.engine import prune_seeds
        from layercollapse.pruning.prefix import IntactPrefixes
        from layercollapse.pruning.trace import Trace, trace_spec

        format = self.profile.run_of(model_name).format
        readout = format == "letter" if readout is None else readout
        shots = self.shots(task, format)
        network = self.network(model_name)
        found = {seed: Trace.load(self.store, trace_spec(network, schedule, evaluation, calibration, criterion=criterion,
                                                         seed=seed, layers=layers, n_remove=n_remove, format=format,
                                                         task=task, split=self.split(task), readout=readout,
                                                         shots=shots), damaged=self.damaged)
                 for seed in seeds}
        missing = [seed for seed in seeds if found[seed] is None]
        if missing and not self.compute:
            raise MissingResult(f"trace ({schedule}, seed {missing[0]})", {"model": model_name, "task": task},
                                self.profile.name)
        if missing:
            model, tokenizer = self.loaded_model(model_name)
            self._memory.intact = self._memory.intact or IntactPrefixes()
            computed = prune_seeds(model, tokenizer, evaluation, schedule, missing, calibration=calibration,
                                   criterion=criterion, layers=layers, n_remove=n_remove, format=format, task=task,
                                   split=self.split(task), readout=readout, shots=shots, store=self.store,
                                   progress=self.progress and schedule, intact=self._memory.intact)
            found.update(zip(missing, computed))
        return [found[seed] for seed in seeds]

    def random_traces(self, model_name: str | None = None) -> list:
        """The random-layer baseline of one of the profile's :attr:`~Profile.cliff_models` (default the pruning
        model): one trace per seed (``n_random_orders`` seeds), on that model's pruning task and items."""
        model_name = model_name or self.profile.pruning_model
        task = self.profile.pruning_task if model_name == self.profile.pruning_model else self.profile.tasks[0]
        return self.traces("random", range(self.profile.n_random_orders), model_name=model_name, task=task)

    def phase_k_max(self, model_name: str | None = None, task: str | None = None) -> int:
        """The largest k of phase-targeted pruning on (model, task): the profile's ``phase_k_max``, capped by (or, when
        it is null, equal to) the size of the smaller phase, so that both phases are pruned at every k. Without a
        transition every layer counts as Silent: a number still prunes that many (the verdicts then say there are
        no phases), null prunes nothing."""
        phases = self.phases(model_name, task)
        if self.profile.phase_k_max is None:
            return min(len(phases.silent), len(phases.decisive))
        smaller = min(*(len(layers) for layers in (phases.silent, phases.decisive) if layers), phases.n_layers - 1)
        return min(self.profile.phase_k_max, smaller)

    def phase_traces(self, phase: str, model_name: str | None = None, task: str | None = None) -> list:
        """Phase-targeted pruning: k = 1..:meth:`phase_k_max` random layers removed from inside one phase, per seed
        (one trace per seed, the readout of every pruned network), on the first ``n_phase_items`` evaluation items."""
        model_name = model_name or self.profile.main_model
        task = task or self.profile.tasks[0]
        phases = self.phases(model_name, task)
        layers = {"silent": phases.silent, "decisive": phases.decisive}[phase]
        n_remove = self.phase_k_max(model_name, task)
        if not layers or not n_remove:
            return []
        evaluation = self.evaluation(task)[:self.profile.n_phase_items]  # the first n_phase_items (None: all)
        return self._traces(model_name, task, evaluation, "random_in_range", range(self.profile.n_phase_seeds),
                            layers=layers, n_remove=n_remove, readout=True)

    def main_trace(self, schedule: str, model_name: str | None = None, task: str | None = None):
        """One trace of the main model (default) on the main task with the profile's pruning items, for the
        schedules of :data:`MAIN_SCHEDULES`; ``decisive_first`` removes the intact network's Decisive Phase
        first (None when the readout has no transition, so no Decisive Phase)."""
        if schedule not in MAIN_SCHEDULES:
            raise ValueError(f"schedule {schedule!r} is not run on the main model; use one of {MAIN_SCHEDULES}")
        model_name = model_name or self.profile.main_model
        task = task or self.profile.tasks[0]
        if schedule != "decisive_first":
            return self.traces(schedule, (0,), model_name=model_name, task=task)[0]
        decisive = self.phases(model_name, task).decisive
        if not decisive:
            return None
        calibration, evaluation, _ = self.items(task, self.profile.n_pruning_items, self.profile.n_pruning_calibration)
        return self._traces(model_name, task, evaluation, schedule, (0,), calibration=calibration, layers=decisive)[0]

    def cliff_traces(self, model_name: str | None = None) -> dict[str, Any]:
        """The pruning traces of one of the profile's :attr:`~Profile.cliff_models`, by schedule: the profile's
        schedules on the pruning model (``random``: a list, one trace per seed), :data:`MAIN_SCHEDULES` and the random
        orders on the main model (``decisive_first`` only where the readout has a Decisive Phase); both where they are
        one model."""
        model_name = model_name or self.profile.pruning_model
        if model_name not in self.profile.cliff_models:
            raise ValueError(f"model {model_name!r} has no pruning traces in profile '{self.profile.name}'; "
                             f"use one of {self.profile.cliff_models}")
        found: dict[str, Any] = {}
        if model_name == self.profile.pruning_model:
            for schedule in self.profile.schedules:
                found[schedule] = self.random_traces() if schedule == "random" else self.trace(schedule)
        if model_name == self.profile.main_model:
            for schedule in MAIN_SCHEDULES:
                if schedule not in found and (trace := self.main_trace(schedule, model_name)) is not None:
                    found[schedule] = trace
            if "random" in self.profile.schedules and "random" not in found:
                found["random"] = self.random_traces(model_name)
        return found

    def iterative_trace(self, model_name: str | None = None):
        """The Iterative Pruning trace (criterion: mean DM) of one of the profile's :attr:`~Profile.cliff_models`
        (default the pruning model): the one :meth:`cliff_traces` holds under ``"iterative"``."""
        model_name = model_name or self.profile.pruning_model
        if model_name == self.profile.pruning_model:
            return self.trace("iterative")
        if model_name == self.profile.main_model:
            return self.main_trace("iterative", model_name)
        raise ValueError(f"model {model_name!r} has no pruning traces in profile '{self.profile.name}'; "
                         f"use one of {self.profile.cliff_models}")

    def dynamics_trace(self, model_name: str | None = None, task: str | None = None):
        """Iterative Pruning (criterion: mean DM) of the main model with the readout of every pruned network:
        :meth:`main_trace` ("iterative"), the cliff-edge chapter's trace where the main model is the pruning
        model (the test and paper profiles)."""
        model_name = model_name or self.profile.main_model
        if self.profile.run_of(model_name).format != "letter":
            raise ValueError(f"model {model_name!r} runs in {self.profile.run_of(model_name).format} format: the readout along "
                             "pruning traces is recorded for letter-format runs only")
        return self.main_trace("iterative", model_name, task)

    def lm_loss_along(self, trace) -> np.ndarray:
        """Mean next-token loss (nats/token) of the plain-text passages at every step of ``trace``: float64 [n_steps]."""
        texts = self.passages()
        spec = {"experiment": "lm_loss", "trace_spec": trace.spec, "corpus": self.profile.text_corpus,
                "n_passages": len(texts)}

        def compute() -> dict[str, np.ndarray]:
            from layercollapse.pruning.trace import lm_loss_along

            model, tokenizer = self.loaded_model(trace.spec["model"])
            return {"loss": lm_loss_along(model, tokenizer, texts, trace)}

        return self._cached("lm_loss", spec, compute).arrays["loss"]

    def similarity_along(self, trace) -> pd.DataFrame:
        """Linear CKA and cosine between the pruned and intact networks' final states at every step of ``trace``."""
        spec = {"experiment": "similarity", "trace_spec": trace.spec}

        def compute() -> pd.DataFrame:
            from layercollapse.controls.similarity import similarity_along

            model, tokenizer = self.loaded_model(trace.spec["model"])
            items = items_by_id(trace.spec["task"], self.split(trace.spec["task"]), trace.spec["evaluation_ids"])
            return similarity_along(model, tokenizer, items, trace, trace.spec["format"], trace.spec["task"],
                                    shots=self.shots_of(trace.spec))

        return self._cached("similarity", spec, compute).table

    def greedy_margins(self, trace) -> tuple[pd.DataFrame, float]:
        """How close each choice of a greedy ``trace`` was (``pruning.margins``): one row per step (chosen layer,
        runner-up, margin, near tie), and the criterion's numerical noise (its largest spread over token budgets)."""
        from layercollapse.pruning.margins import (
            NOISE_BUDGETS,
            greedy_margins,
            noise_probe_steps,
        )

        probes = noise_probe_steps(trace.n_steps)
        spec = {"experiment": "margins", "trace_spec": trace.spec, "noise_budgets": list(NOISE_BUDGETS),
                "noise_steps": probes}

        def compute() -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
            from layercollapse.pruning.margins import criterion_noise, replay_candidates

            model, tokenizer = self.loaded_model(trace.spec["model"])
            task, shots = trace.spec["task"], self.shots_of(trace.spec)
            calibration = items_by_id(task, self.split(task), trace.spec["calibration_ids"])
            values = replay_candidates(model, tokenizer, trace, calibration, shots=shots,
                                       progress=self.progress and f"candidates {trace.schedule}")
            noise = criterion_noise(model, tokenizer, trace, calibration, probes, shots=shots)
            table = pd.DataFrame({"step": np.repeat(probes, len(NOISE_BUDGETS)),
                                  "token_budget": np.tile(NOISE_BUDGETS, len(probes)), "criterion": noise.ravel()})
            return table, {"values": values}

        result = self._cached("margins", spec, compute)
        spread = result.table.groupby("step")["criterion"].agg(lambda column: column.max() - column.min())
        noise = float(spread.max())
        return greedy_margins(trace, result.arrays["values"], noise), noise

    # ------------------------------------------------------------ settings

    def candidate_readouts(self) -> dict:
        """The intact readout of every candidate setting (``Profile.candidate_settings``, the main setting first):
        ``profiles.Setting`` -> ``Readout``."""
        return {setting: self.for_setting(setting).readout() for setting in self.profile.candidate_settings}

    @cached_property
    def candidates(self) -> pd.DataFrame:
        """``claims.breadth.candidate_table`` of every candidate setting: its intact transition and whether it
        qualifies for the pruning study (the registered rule)."""
        from layercollapse.claims.breadth import candidate_table

        return candidate_table(self.candidate_readouts(), n_resamples=self.profile.n_bootstrap,
                               seed=self.profile.seeds[0])

    def studied_settings(self) -> tuple:
        """The settings the pruning study runs on: the main setting and the main model's other phase tasks (their
        dose-response is part of the main study), then the candidates that qualify (``claims.breadth``; every candidate
        where the profile's ``study`` is ``all``), in candidate order."""
        from layercollapse.study.profiles import Setting

        table = self.candidates
        chosen = table if self.profile.study == "all" else table[table["qualifies"]]
        return tuple(dict.fromkeys([self.profile.main_setting, *self.profile.phase_settings,
                                    *(Setting.from_key(key) for key in chosen["setting"])]))

    def per_setting(self, extra: Sequence = ()) -> dict:
        """The experiments of every studied setting (:meth:`studied_settings`, the main setting first), then of the
        ``extra`` settings not among them (e.g. :meth:`cliff_settings`): ``profiles.Setting`` -> :meth:`for_setting`."""
        settings = dict.fromkeys([*self.studied_settings(), *extra])
        return {setting: self.for_setting(setting) for setting in settings}

    def cliff_setting(self, model_name: str):
        """The setting of one of the profile's :attr:`~Profile.cliff_models`' schedule traces: the main setting, or the
        pruning model on the pruning task in its format."""
        from layercollapse.study.profiles import Setting

        if model_name == self.profile.main_model:
            return self.profile.main_setting
        return Setting(model_name, self.profile.pruning_task, self.profile.run_of(model_name).format, self.profile.shots)

    def cliff_settings(self) -> tuple:
        """:meth:`cliff_setting` of every cliff model, the main model's first."""
        return tuple(self.cliff_setting(model) for model in self.profile.cliff_models)

    def schedule_traces(self, setting) -> dict[str, Any]:
        """The schedule traces of one studied setting, by schedule (``random``: a list, one trace per seed, possibly
        empty): the main setting's :data:`MAIN_SCHEDULES`, the pruning model's own schedules on its pruning setting,
        another setting's ``Profile.setting_study`` schedules (the study runs those); ``decisive_first`` only where the
        readout has a Decisive Phase."""
        experiments = self.for_setting(setting)
        profile = self.profile
        schedules = (MAIN_SCHEDULES if setting == profile.main_setting else
                     tuple(s for s in profile.schedules if s != "random") if setting == profile.pruning_setting else
                     profile.setting_study.schedules)
        found = {schedule: experiments.main_trace(schedule) for schedule in schedules}
        found["random"] = experiments.random_traces()
        return {schedule: trace for schedule, trace in found.items() if trace is not None}

    def studies(self, setting) -> bool:
        """Whether the pruning study runs on ``setting`` (:meth:`studied_settings`)."""
        return setting in self.studied_settings()

    def study(self, setting) -> None:
        """The pruning study of one studied setting besides the main one (whose experiments are the plan's own), sized by
        ``Profile.setting_study``: the phase-targeted dose-response (k = 1 .. the smaller phase, readout of every
        network), its schedules, the random orders, and the LM loss along Iterative Pruning and the random orders.
        Nothing for a setting that is not studied."""
        if not self.studies(setting):
            return
        experiments = self.for_setting(setting)
        for phase in ("silent", "decisive"):
            experiments.phase_traces(phase)
        schedules = self.schedule_traces(setting)
        if "iterative" in schedules:
            experiments.lm_loss_along(schedules["iterative"])
        for trace in schedules["random"]:
            experiments.lm_loss_along(trace)

    # ------------------------------------------------------------ perturbations

    def noise_sweep(self, model_name: str | None = None, task: str | None = None) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
        """Noise h' = h + eps*sigma(h)*N(0, I) at the output of one layer at a time, per phase.

        Returns:
            (table with one row per (layer, phase, variance, draw) and its accuracy / mean DM,
             scores float32 [n_rows, n_items, n_options], gold int [n_items]).
        """
        model_name = model_name or self.profile.main_model
        task = task or self.profile.tasks[0]
        phases = self.phases(model_name, task)
        noise = self.profile.noise
        chosen = [(layer, "silent") for layer in evenly_spaced(phases.silent, noise.layers_per_phase)]
        chosen += [(layer, "decisive") for layer in evenly_spaced(phases.decisive, noise.layers_per_phase)]
        items = self.evaluation(task)
        format = self.profile.run_of(model_name).format
        spec = {"experiment": "noise", "layers": [layer for layer, _ in chosen], "sigma2": list(noise.sigma2),
                "n_draws": noise.n_draws, **self._base_spec(model_name, task, items, format)}

        def compute():
            from layercollapse.controls.noise import noise_sweep
            from layercollapse.pruning.encoding import encode_items
            from layercollapse.pruning.prefix import PrefixRunner

            model, tokenizer = self.loaded_model(model_name)
            runner = PrefixRunner(model, encode_items(model, tokenizer, items, format, task, shots=self.shots(task, format)))
            runner.remember(range(phases.n_layers))
            table, scores = noise_sweep(runner, chosen, noise.sigma2, noise.n_draws)
            return table, {"scores": scores, "gold": np.array([i.gold for i in items])}

        result = self._cached("noise", spec, compute)
        table, scores, gold = result.table.copy(), result.arrays["scores"], result.arrays["gold"]
        table["accuracy"] = metrics.accuracy(scores, gold)
        table["mean_dm"] = metrics.mean_decision_margin(scores, gold)
        return table, scores, gold

    def finetune_recovery(self, model_name: str | None = None) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
        """Prune to each fraction along a model's Iterative Pruning trace, fine-tune briefly, re-evaluate (C7).

        ``model_name``: one of the profile's ``finetune_models`` (default the pruning model), fine-tuned as
        ``Profile.finetune_of`` says.

        Returns:
            (one row per fraction: n_removed, n_kept, accuracy / mean DM before and after, final training loss;
             arrays: scores_before / scores_after float32 [n_fractions, n_items, n_options], gold, losses).
        """
        model_name = model_name or self.profile.pruning_model
        spec_ft = self.profile.finetune_of(model_name)
        if spec_ft is None:
            raise ValueError(f"model {model_name!r} has no fine-tuning spec in profile '{self.profile.name}'; "
                             f"use one of {self.profile.finetune_models}")
        trace = self.iterative_trace(model_name)
        task = trace.spec["task"]
        _, evaluation, training = self.items(task, self.profile.n_pruning_items, self.profile.n_pruning_calibration)
        training = subsample(training, spec_ft.n_train_items, self.profile.seeds[0])
        format = self.profile.run_of(model_name).format
        n_total = trace.n_layers
        steps = sorted({min(int(round(f * n_total)), trace.n_steps - 1) for f in spec_ft.prune_fractions})
        spec = {"experiment": "finetune", "trace_spec": trace.spec, "steps": steps, "train_ids": [i.id for i in training],
                "finetune": {"steps": spec_ft.steps, "lr": spec_ft.learning_rate, "method": spec_ft.method}}

        def compute():
            from layercollapse.controls.finetune import finetune_recovery

            model, tokenizer = self.loaded_model(model_name)
            rows, arrays = finetune_recovery(model, tokenizer, trace, steps, training, evaluation, format, task,
                                             train_steps=spec_ft.steps, lr=spec_ft.learning_rate,
                                             method=spec_ft.method, seed=self.profile.seeds[0],
                                             shots=self.shots_of(trace.spec))
            return pd.DataFrame(rows), arrays

        result = self._cached("finetune", spec, compute)
        table, arrays = result.table.copy(), result.arrays
        for when in ("before", "after"):
            table[f"accuracy_{when}"] = metrics.accuracy(arrays[f"scores_{when}"], arrays["gold"])
            table[f"mean_dm_{when}"] = metrics.mean_decision_margin(arrays[f"scores_{when}"], arrays["gold"])
        table["fraction_removed"] = table["n_removed"] / n_total
        table["final_loss"] = arrays["losses"][:, -1]
        return table, arrays

    # ----------------------------------------------------------------- the plan

    @cached_property
    def plan(self) -> list:
        """Every experiment of the profile, in the order ``reproduce`` runs them (``study.plan.build_plan``)."""
        from layercollapse.study.plan import build_plan

        return build_plan(self)
