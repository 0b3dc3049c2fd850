"""Experiment profiles: which models, tasks, item counts and seeds a site build uses.

A profile has two halves with the same name:

    _quarto-<name>.yml    Quarto options (output folder, freeze), merged over _quarto.yml
    profiles/<name>.yml   the experiment spec, parsed here into a :class:`Profile`

Quarto activates a profile with ``quarto render --profile <name>`` (or the
``QUARTO_PROFILE`` environment variable) and passes the active profile names to the
Jupyter kernel in ``QUARTO_PROFILE``; chapters read it only through
:func:`active_profile` / :func:`load_profile`.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from layercollapse import settings
from layercollapse.settings import active_profile, available_profiles, profiles_dir  # re-exported: where profiles are

PROFILE_ENV = settings.PROFILE.name  # used when QUARTO_PROFILE is not set (scripts, tests)


class ProfileError(ValueError):
    """A profile file that is missing, not YAML, or does not match :class:`Profile`."""


@dataclass(frozen=True)
class ModelRun:
    """One model and the prompt format it is scored in.

    Attributes:
        name: short model name of ``layercollapse.model.loading.MODEL_REGISTRY``.
        format: ``letter`` (next-token log-prob of A/B/C/...) or ``cloze``
            (summed log-likelihood of each option text); see the Methods page.
    """

    name: str
    format: Literal["letter", "cloze"]


@dataclass(frozen=True)
class NoiseSpec:
    """Noise injection h' = h + eps * sigma(h) * N(0, I) (claim C6).

    Attributes:
        sigma2: noise variances eps**2 to sweep; 0.0 is the clean reference.
        n_draws: noise draws per variance, to average out the sampling.
        layers_per_phase: layers perturbed (one at a time) in each phase, evenly spaced in it.
    """

    sigma2: tuple[float, ...] = (0.0, 0.02, 0.05, 0.1)
    n_draws: int = 3
    layers_per_phase: int = 2


@dataclass(frozen=True)
class FinetuneSpec:
    """Supervised fine-tuning after pruning (claim C7).

    Attributes:
        prune_fractions: fractions of layers removed before fine-tuning.
        steps: optimiser steps per fine-tune.
        learning_rate: peak learning rate.
        method: ``lora`` adapters or ``full`` fine-tuning.
        n_train_items: training items (disjoint from calibration and evaluation).
    """

    prune_fractions: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6)
    steps: int = 200
    learning_rate: float = 1e-4
    method: Literal["lora", "full"] = "lora"
    n_train_items: int = 512


@dataclass(frozen=True, order=True)
class Setting:
    """One model scored one way on one task: a column of the verdict matrix, and the unit every per-setting claim is
    decided on.

    Attributes:
        model: short model name; task: task name; format: ``letter`` or ``cloze``; shots: solved examples prepended
            to every prompt (0 = zero-shot; drawn as ``Profile.shots`` says).
    """

    model: str
    task: str
    format: Literal["letter", "cloze"]
    shots: int = 0

    @property
    def key(self) -> str:
        """``model@task@format@<shots>shot``: how verdict files and matrix cells name the setting."""
        return f"{self.model}@{self.task}@{self.format}@{self.shots}shot"

    @property
    def label(self) -> str:
        """For people: ``arc_easy, cloze, 5-shot`` (the model is named apart, where the matrix groups by it)."""
        return f"{self.task}, {self.format}, {self.shots}-shot"

    @classmethod
    def from_key(cls, key: str) -> Setting:
        """Inverse of :attr:`key`."""
        model, task, format, shots = key.split("@")
        return cls(model, task, format, int(shots.removesuffix("shot")))


@dataclass(frozen=True)
class CandidateGrid:
    """Candidate settings of the study: every model x task x format x shots. Each candidate's intact readout is
    measured; the pruning study runs on those that qualify (``claims.breadth``).

    Attributes:
        models, tasks: short model names and task names; formats: prompt formats; shots: numbers of solved examples.
    """

    models: tuple[str, ...]
    tasks: tuple[str, ...]
    formats: tuple[Literal["letter", "cloze"], ...] = ("letter",)
    shots: tuple[int, ...] = (0,)

    def settings(self) -> list[Setting]:
        return [Setting(model, task, format, shots) for model in self.models for task in self.tasks
                for format in self.formats for shots in self.shots]


#: The schedules the pruning study may run on a studied setting besides the main one (``SettingStudy.schedules``
#: chooses among them; the random orders and the phase-targeted dose-response run beside them).
SETTING_SCHEDULES = ("iterative", "block_influence", "reverse", "decisive_first")


@dataclass(frozen=True)
class SettingStudy:
    """How the pruning study is sized on the studied settings besides the main one (the settings of the verdict
    matrix), so that the profile fits its compute budget; the main setting runs the profile's full study.

    Attributes:
        n_phase_seeds: seeds per phase of the phase-targeted dose-response (the main model's ``phase_tasks`` keep the
            profile's ``n_phase_seeds`` and ``n_phase_items``: their dose-response is part of the main study).
        n_phase_items: evaluation items of the dose-response, the first of the setting's evaluation items (None: all
            of them); the intact readout that locates the phases keeps every item.
        n_random_orders: random removal orders (0: none; P1b's fit then reads the phase-targeted traces alone).
        schedules: the schedules run besides them (``Experiments.study``), one trace each.
    """

    n_phase_seeds: int = 10
    n_phase_items: int | None = None
    n_random_orders: int = 5
    schedules: tuple[str, ...] = SETTING_SCHEDULES


@dataclass(frozen=True)
class Profile:
    """The experiment spec of a site build (``profiles/<name>.yml``).

    Attributes:
        name: profile name; the file's stem, never written in the file.
        description: one line shown on the Methods page.
        models: every model run; the first is the main evidence unless ``main_model`` says otherwise.
        main_model: name of the model whose runs carry the main figures.
        tasks: task names of ``layercollapse.data.tasks``.
        eval_split: split evaluated (a task without it falls back as ``tasks`` documents).
        n_items: evaluation items per task; None = the whole split.
        n_calibration: calibration items per task for the greedy criterion (disjoint from evaluation).
        seeds: seeds of item subsampling and random controls; error bars are across them.
        n_bootstrap: item-bootstrap resamples for confidence intervals.
        pruning_model: model run whose pruning traces carry the cliff-edge, similarity and
            random-control chapters (greedy pruning costs O(L^2) evaluations); default main_model.
        pruning_task: task of those traces; default the first task.
        n_pruning_items: evaluation items of the pruning traces; default n_items.
        n_pruning_calibration: calibration items of the greedy criterion; default n_calibration.
        schedules: pruning schedules compared (``iterative`` is the paper's).
        n_random_orders: random layer-removal orders in the random-layer baseline.
        phase_k_max: phase-targeted pruning removes k = 1..phase_k_max layers inside a phase; null: up to the
            size of the smaller phase (the whole Decisive Phase, on models where it is the smaller one).
        phase_tasks: the tasks of the main model pruned inside each phase (the dose-response of C5b); default the
            first task. Each gets the main model's readout, which locates its phases.
        n_phase_seeds: random draws of the removed layers per phase.
        n_phase_items: evaluation items of the phase-targeted traces: the first ``n_phase_items`` of the task's
            evaluation items (None: all ``n_items``; ``setting_study`` sets it for the settings besides the main one).
        text_corpus: plain-text corpus for the no-decision-structure control (LM loss), offline.
        n_text_passages: passages of that corpus (each cut to 256 tokens).
        tuned_lens_steps: training steps of the tuned lens.
        tuned_lens_tokens: tokens per calibration text when training the tuned lens.
        noise: noise-injection sweep (C6).
        finetune: fine-tuning recovery (C7) along the pruning model's iterative trace; None skips it.
        finetune_main: fine-tuning recovery along the main model's iterative trace, where the main model is not
            the pruning model (its own spec: a 1.5B model on a CPU is fine-tuned with LoRA); None skips it.
        shots: solved examples prepended to every prompt (k-shot; drawn once per task by the first seed from its
            few-shot split, disjoint from the profile's items, and recorded in every spec as ``shot_ids``); 0 =
            zero-shot, as the harness scores by default.
        candidates: grids of candidate settings (:class:`CandidateGrid`) measured by their intact readout; the
            pruning study runs on those that qualify (``claims.breadth``) and on the main setting. Empty: the main
            setting only.
        study: which candidates get the pruning study: ``qualifying`` (the registered rule of ``claims.breadth``), or
            ``all`` (the test profile: every candidate, to run the plumbing of several settings; its numbers test
            code, never a claim).
        setting_study: how that study is sized on the studied settings besides the main one (:class:`SettingStudy`).
        dtype: weights dtype (``auto``: bf16 on GPU or bf16-capable CPU, else fp32).
        readout: precision after the last hidden state (final norm, unembedding): ``float32``
            (default) or ``model`` (the weights dtype; see ``architectures.set_readout``).
    """

    name: str
    description: str
    models: tuple[ModelRun, ...]
    tasks: tuple[str, ...]
    main_model: str = ""
    eval_split: Literal["test", "validation"] = "test"
    n_items: int | None = 300
    n_calibration: int = 64
    seeds: tuple[int, ...] = (0, 1, 2)
    n_bootstrap: int = 2000
    pruning_model: str = ""
    pruning_task: str = ""
    n_pruning_items: int | None = None
    n_pruning_calibration: int | None = None
    schedules: tuple[str, ...] = ("iterative",)
    n_random_orders: int = 20
    phase_k_max: int | None = 3
    phase_tasks: tuple[str, ...] = ()
    n_phase_seeds: int = 10
    n_phase_items: int | None = None
    text_corpus: Literal["sciq_support", "boolq_passages"] = "sciq_support"
    n_text_passages: int = 32
    tuned_lens_steps: int = 250
    tuned_lens_tokens: int = 128
    noise: NoiseSpec = field(default_factory=NoiseSpec)
    finetune: FinetuneSpec | None = field(default_factory=FinetuneSpec)
    finetune_main: FinetuneSpec | None = None
    shots: int = 0
    candidates: tuple[CandidateGrid, ...] = ()
    study: Literal["qualifying", "all"] = "qualifying"
    setting_study: SettingStudy = field(default_factory=SettingStudy)
    dtype: Literal["auto", "bf16", "fp16", "fp32"] = "auto"
    readout: Literal["float32", "model"] = "float32"

    def __post_init__(self) -> None:
        if not self.models:
            raise ProfileError(f"profile '{self.name}': 'models' must list at least one model run")
        if not self.tasks:
            raise ProfileError(f"profile '{self.name}': 'tasks' must list at least one task")
        if not self.main_model:
            object.__setattr__(self, "main_model", self.models[0].name)
        if self.main_model not in {run.name for run in self.models}:
            raise ProfileError(
                f"profile '{self.name}': main_model '{self.main_model}' is not one of the models "
                f"{[run.name for run in self.models]}"
            )
        if not self.pruning_model:
            object.__setattr__(self, "pruning_model", self.main_model)
        if not self.pruning_task:
            object.__setattr__(self, "pruning_task", self.tasks[0])
        if self.n_pruning_items is None:
            object.__setattr__(self, "n_pruning_items", self.n_items)
        if self.n_pruning_calibration is None:
            object.__setattr__(self, "n_pruning_calibration", self.n_calibration)
        if self.pruning_model not in {run.name for run in self.models}:
            raise ProfileError(f"profile '{self.name}': pruning_model '{self.pruning_model}' is not one of the models")
        if not self.phase_tasks:
            object.__setattr__(self, "phase_tasks", self.tasks[:1])
        for key in ("n_calibration", "n_bootstrap", "n_text_passages", "phase_k_max",
                    "n_phase_seeds", "tuned_lens_steps", "tuned_lens_tokens"):
            if getattr(self, key) is not None and getattr(self, key) < 1:
                raise ProfileError(f"profile '{self.name}': '{key}' must be >= 1, got {getattr(self, key)}")
        if self.n_random_orders < 0 or self.setting_study.n_random_orders < 0:
            raise ProfileError(f"profile '{self.name}': 'n_random_orders' must be >= 0 (0: none), got "
                               f"{self.n_random_orders} / setting_study {self.setting_study.n_random_orders}")
        for where, value in (("n_phase_items", self.n_phase_items),
                             ("setting_study: n_phase_items", self.setting_study.n_phase_items)):
            if value is not None and value < 1:
                raise ProfileError(f"profile '{self.name}': '{where}' must be >= 1 or null, got {value}")
        if self.setting_study.n_phase_seeds < 1:
            raise ProfileError(f"profile '{self.name}': 'setting_study: n_phase_seeds' must be >= 1, got "
                               f"{self.setting_study.n_phase_seeds}")
        if self.finetune_main is not None and self.main_model == self.pruning_model:
            raise ProfileError(f"profile '{self.name}': 'finetune_main' applies only where main_model is not the "
                               f"pruning_model (here both are '{self.main_model}'); use 'finetune'")
        if self.shots < 0 or any(shots < 0 for grid in self.candidates for shots in grid.shots):
            raise ProfileError(f"profile '{self.name}': 'shots' must be >= 0 (0 = zero-shot), got {self.shots}"
                               + "".join(f", candidates {list(grid.shots)}" for grid in self.candidates))
        if self.n_items is not None and self.n_items < 1:
            raise ProfileError(f"profile '{self.name}': 'n_items' must be >= 1 or null, got {self.n_items}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ProfileError(f"profile '{self.name}': 'seeds' must be a non-empty list of distinct ints")

    def check_names(self, where: str | None = None) -> None:
        """Raise :class:`ProfileError` unless every name resolves (checked when a profile file is loaded):
        task names must be registered; a model name without '/' must be a short name, a path-like name an existing folder."""
        from layercollapse.data.tasks import TASK_REGISTRY
        from layercollapse.model.loading import MODEL_REGISTRY, looks_like_path

        where = where or f"profile '{self.name}'"
        candidate_tasks = [task for grid in self.candidates for task in grid.tasks]
        for task in (*self.tasks, self.pruning_task, *self.phase_tasks, *candidate_tasks):
            if task.partition(":")[0] not in TASK_REGISTRY:
                raise ProfileError(f"{where}: unknown task '{task}'; known tasks: "
                                   f"{', '.join(TASK_REGISTRY)} (and mmlu:<subject>)")
        from layercollapse.pruning.schedules import SCHEDULES

        unknown = [schedule for schedule in (*self.schedules, *self.setting_study.schedules) if schedule not in SCHEDULES]
        study = self.setting_study.schedules
        if "iterative" not in study or not set(study) <= set(SETTING_SCHEDULES):
            raise ProfileError(f"{where}: 'setting_study: schedules' {list(study)} must include 'iterative' (C1 and P1 "
                               f"read it) and hold only {list(SETTING_SCHEDULES)}")
        if unknown:
            raise ProfileError(f"{where}: unknown schedule(s) {unknown}; registered schedules: {', '.join(SCHEDULES)}")
        for run in (*self.models, *(ModelRun(model, "letter") for grid in self.candidates for model in grid.models)):
            if Path(run.name).expanduser().is_dir():
                continue
            if looks_like_path(run.name):
                raise ProfileError(f"{where}: model folder '{run.name}' does not exist")
            if "/" not in run.name and run.name not in MODEL_REGISTRY:
                raise ProfileError(f"{where}: unknown model '{run.name}'; short names: "
                                   f"{', '.join(MODEL_REGISTRY)} (or a Hub id / local folder)")

    @property
    def main_run(self) -> ModelRun:
        """The run of :attr:`main_model` (its first, if it is scored in several formats)."""
        return self.run_of(self.main_model)

    @property
    def pruning_run(self) -> ModelRun:
        """The run of :attr:`pruning_model`."""
        return self.run_of(self.pruning_model)

    @property
    def cliff_models(self) -> tuple[str, ...]:
        """The models whose pruning traces decide the cliff-edge claims (C1, C2, R3): the main model first, then
        the pruning model where it is another one."""
        return tuple(dict.fromkeys((self.main_model, self.pruning_model)))

    @property
    def finetune_models(self) -> tuple[str, ...]:
        """The :attr:`cliff_models` with a fine-tuning spec (:meth:`finetune_of`), main model first."""
        return tuple(model for model in self.cliff_models if self.finetune_of(model) is not None)

    def finetune_of(self, model: str) -> FinetuneSpec | None:
        """The fine-tuning spec (C7) of one of the :attr:`cliff_models`: ``finetune`` for the pruning model,
        ``finetune_main`` for the main model where it is another one."""
        if model == self.pruning_model:
            return self.finetune
        return self.finetune_main if model == self.main_model else None

    @property
    def main_setting(self) -> Setting:
        """The main model on the main task, in its format, with the profile's shots."""
        return Setting(self.main_model, self.tasks[0], self.main_run.format, self.shots)

    @property
    def phase_settings(self) -> tuple[Setting, ...]:
        """The main model on each of its ``phase_tasks`` (its dose-response is part of the main study; studied always)."""
        return tuple(Setting(self.main_model, task, self.main_run.format, self.shots) for task in self.phase_tasks)

    @property
    def pruning_setting(self) -> Setting:
        """The pruning model on the pruning task, in its format: the setting of its schedule traces."""
        return Setting(self.pruning_model, self.pruning_task, self.pruning_run.format, self.shots)

    @property
    def candidate_settings(self) -> tuple[Setting, ...]:
        """Every candidate setting, each once: the main setting, the main model's other phase tasks, then the grids."""
        return tuple(dict.fromkeys([self.main_setting, *self.phase_settings,
                                    *(s for grid in self.candidates for s in grid.settings())]))

    def setting_profile(self, setting: Setting) -> Profile:
        """This profile narrowed to one setting: its one model in its format, its task as the main, pruning and
        phase task, its shots; items, bootstrap and store unchanged, so a result of the setting has the spec it would
        have in a profile built for it alone. A setting besides the main one takes the seeds, items and random orders
        of :attr:`setting_study`; the main model's :attr:`phase_settings` keep their dose-response's seeds and items,
        and the :attr:`pruning_setting` keeps its random orders (both were part of the main study)."""
        sizes = {}
        if setting != self.main_setting:
            phase_task, study = setting in self.phase_settings, self.setting_study
            sizes = {"n_random_orders": self.n_random_orders if setting == self.pruning_setting else study.n_random_orders,
                     "n_phase_seeds": self.n_phase_seeds if phase_task else study.n_phase_seeds,
                     "n_phase_items": self.n_phase_items if phase_task else study.n_phase_items}
        return dataclasses.replace(self, models=(ModelRun(setting.model, setting.format),), main_model=setting.model,
                                   pruning_model=setting.model, tasks=(setting.task,), pruning_task=setting.task,
                                   phase_tasks=(setting.task,), shots=setting.shots, finetune_main=None,
                                   candidates=(), **sizes)

    def run_of(self, model: str) -> ModelRun:
        """The (first) run of a model of this profile."""
        for run in self.models:
            if run.name == model:
                return run
        raise ProfileError(f"profile '{self.name}' has no model '{model}'; it has {[r.name for r in self.models]}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (tuples as lists), e.g. to fold into a result's spec."""
        return dataclasses.asdict(self)


def _type_name(hint: Any) -> str:
    """Readable name of a type hint for error messages."""
    origin = typing.get_origin(hint)
    if hint is type(None):
        return "null"
    if origin is Literal:
        return " | ".join(repr(v) for v in typing.get_args(hint))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(arg) for arg in typing.get_args(hint))
    if origin is tuple:
        return f"list of {_type_name(typing.get_args(hint)[0])}"
    if dataclasses.is_dataclass(hint):
        return f"mapping with keys {[f.name for f in dataclasses.fields(hint)]}"
    return getattr(hint, "__name__", str(hint))


def _convert(value: Any, hint: Any, where: str) -> Any:
    """Check ``value`` against ``hint`` and convert lists to tuples, mappings to dataclasses."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in typing.get_args(hint):
            return None
        inner = next(arg for arg in typing.get_args(hint) if arg is not type(None))
        try:
            return _convert(value, inner, where)
        except ProfileError:
            if typing.get_origin(inner) is None and not dataclasses.is_dataclass(inner):
                raise ProfileError(f"{where}: expected {_type_name(hint)}, got {type(value).__name__} {value!r}") from None
            raise
    if origin is Literal:
        if value not in typing.get_args(hint):
            raise ProfileError(f"{where}: {value!r} is not allowed; allowed: {_type_name(hint)}")
        return value
    if origin is tuple:
        if not isinstance(value, list):
            raise ProfileError(f"{where}: expected {_type_name(hint)}, got {type(value).__name__} {value!r}")
        return tuple(_convert(v, typing.get_args(hint)[0], f"{where}[{i}]") for i, v in enumerate(value))
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, where)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, hint) or (isinstance(value, bool) and hint is not bool):
        raise ProfileError(f"{where}: expected {_type_name(hint)}, got {type(value).__name__} {value!r}")
    return value


def _build(cls: type, data: Any, where: str, **extra: Any) -> Any:
    """Build dataclass ``cls`` from mapping ``data``, rejecting unknown keys and wrong types."""
    if not isinstance(data, dict):
        raise ProfileError(f"{where}: expected {_type_name(cls)}, got {type(data).__name__} {data!r}")
    hints = typing.get_type_hints(cls)
    allowed = [f.name for f in dataclasses.fields(cls) if f.name not in extra]
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise ProfileError(f"{where}: unknown key(s) {unknown}; allowed keys: {allowed}")
    required = [
        f.name for f in dataclasses.fields(cls)
        if f.name not in extra and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    missing = [key for key in required if key not in data]
    if missing:
        raise ProfileError(f"{where}: missing required key(s) {missing}")
    values = {key: _convert(value, hints[key], f"{where}: key '{key}'") for key, value in data.items()}
    try:
        return cls(**values, **extra)
    except ProfileError as error:
        raise ProfileError(f"{where}: {error}") from None


def load_profile(name: str | None = None) -> Profile:
    """Read and validate ``profiles/<name>.yml`` (``name`` None: :func:`active_profile`).

    Raises:
        ProfileError: the file is missing or not YAML, or a key is unknown, missing
            or of the wrong type; the message names the file, the key and what is allowed.
    """
    name = name or active_profile()
    path = profiles_dir() / f"{name}.yml"
    if not path.is_file():
        raise ProfileError(
            f"no experiment spec for profile '{name}': {path} does not exist; "
            f"available profiles: {available_profiles()}"
        )
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ProfileError(f"{path}: not valid YAML: {error}") from error
    profile = _build(Profile, data, str(path), name=name)
    profile.check_names(where=str(path))
    return profile
