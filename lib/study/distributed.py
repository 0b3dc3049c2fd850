"""Distributed ``reproduce``: the steps of a profile's plan as independent submitit jobs.

Each job runs one step of :attr:`Experiments.plan`, by index, in a fresh process (a Slurm
array task, or a local subprocess) and writes its results to the shared store; the store's
writes are atomic and locked per key, so concurrent workers are safe. A step that finds its
result stored returns at once, so a resubmitted plan only runs what is missing, and a
pruning trace resumes at its last checkpointed step.

The steps are independent except for a few that read another step's result, so they run in
waves, each wave waiting for the one before:

1. the layer-wise readouts (the noise sweep and phase-targeted pruning read the main one);
2. everything else (noise, pruning traces, baselines, tuned lens);
3. the steps that read the finished Iterative Pruning trace (similarity, fine-tuning recovery).

Executors (``submitit``, optional: ``pip install 'layercollapse[distributed]'``, imported only here):

- ``slurm``: one job array per wave, at most ``n_workers`` tasks at a time, one GPU each;
- ``local``: up to ``n_workers`` subprocesses on this machine (one GPU each, round-robin, when
  there are GPUs);
- ``debug``: the same jobs run one after another in this process (tests, debugging).

Command line: ``python -m layercollapse reproduce --profile paper --workers 8 --executor slurm
--slurm-partition gpu``.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EXECUTORS = ("local", "slurm", "debug")
DEFAULT_TIME_MIN = 24 * 60  # per job (Slurm --time; local timeout)
POLL_S = 2.0


@dataclass(frozen=True)
class StepOutcome:
    """What one job reports back: the plan step it ran, whether it finished, how long it took, where."""

    index: int
    name: str
    ok: bool
    seconds: float
    error: str = ""
    host: str = ""


def plan_waves(steps: Sequence[Any], selected: Sequence[int] | None = None) -> list[list[int]]:
    """Plan step indices grouped into waves that run one after another: a step runs one wave after the latest of
    the steps it ``needs`` (``Experiments.plan``'s ``PlanStep``), so every result it reads is stored by then.

    Args:
        steps: the plan's steps, in plan order (name, run, needs).
        selected: the indices to run (default: all); a needed step that is not selected counts as done.
    """
    selected = range(len(steps)) if selected is None else selected
    index_of = {step.name: index for index, step in enumerate(steps)}
    for step in steps:
        strays = [needed.name for needed in step.needs if needed.name not in index_of]
        if strays:
            raise ValueError(f"plan step {step.name!r} needs {strays}, which are not steps of this plan")
    depth: dict[int, int] = {}

    def wave_of(index: int) -> int:
        if index not in depth:
            needed = [index_of[step.name] for step in steps[index].needs if index_of[step.name] in selected]
            depth[index] = 1 + max(map(wave_of, needed), default=-1)
        return depth[index]

    waves: dict[int, list[int]] = {}
    for index in selected:
        waves.setdefault(wave_of(index), []).append(index)
    return [waves[wave] for wave in sorted(waves)]


def run_step(profile: Any, store_root: str, index: int, name: str,
             experiments_class: Callable[..., Any] | None = None) -> StepOutcome:
    """Run plan step ``index`` of ``profile`` into the store at ``store_root`` (the job's body).

    Never raises: a failure comes back as ``ok=False`` with its traceback (submitit's debug
    executor would otherwise open a debugger). ``name`` guards against a plan that changed
    between submission and execution.
    """
    start = time.perf_counter()
    host = platform.node()
    try:
        from layercollapse.storage.store import Store

        if experiments_class is None:
            from layercollapse.study.experiments import (
                Experiments as experiments_class,
            )
        experiments = experiments_class(profile, store=Store(store_root), compute=True, progress=False)
        steps = experiments.plan
        if index >= len(steps) or steps[index].name != name:
            found = steps[index].name if index < len(steps) else "nothing"
            raise RuntimeError(f"plan step {index} is {found!r}, expected {name!r}: the plan changed since submission")
        steps[index].run()
    except Exception:  # noqa: BLE001 - reported to the coordinator
        return StepOutcome(index, name, False, time.perf_counter() - start, traceback.format_exc(), host)
    return StepOutcome(index, name, True, time.perf_counter() - start, "", host)


def default_folder(store_root: Path, profile_name: str) -> Path:
    """Where submitit keeps job pickles and logs: ``<store root>/../cache/submitit/<profile>``
    (``data/cache/`` of the checkout for the default store: git-ignored, and shared wherever the store is)."""
    return Path(store_root).resolve().parent / "cache" / "submitit" / profile_name


def make_executor(kind: str, folder: str | Path, n_workers: int, *, time_min: int = DEFAULT_TIME_MIN,
                  slurm_partition: str | None = None, slurm_gpus: int = 1, slurm_cpus: int = 8,
                  slurm_mem_gb: int | None = None, slurm_account: str | None = None, slurm_qos: str | None = None,
                  slurm_setup: Sequence[str] = (), slurm_additional: dict[str, Any] | None = None,
                  job_name: str = "layercollapse"):
    """A submitit executor of ``kind`` ("local", "slurm" or "debug") writing its logs under ``folder``."""
    if kind not in EXECUTORS:
        raise ValueError(f"Unknown executor '{kind}'; use one of {', '.join(EXECUTORS)}")
    try:
        import submitit
    except ImportError as error:
        raise ImportError("distributed reproduce needs submitit: pip install 'layercollapse[distributed]' "
                          "(or pip install submitit)") from error
    folder = Path(folder) / "%j"
    if kind == "debug":
        return submitit.DebugExecutor(folder)
    if kind == "local":
        executor = submitit.LocalExecutor(folder)
        executor.update_parameters(timeout_min=time_min)
        return executor
    executor = submitit.SlurmExecutor(folder)
    parameters: dict[str, Any] = {"job_name": job_name, "time": time_min, "nodes": 1, "ntasks_per_node": 1,
                                  "cpus_per_task": slurm_cpus, "array_parallelism": max(1, n_workers)}
    if slurm_gpus:
        parameters["gpus_per_node"] = slurm_gpus
    optional = {"partition": slurm_partition, "account": slurm_account, "qos": slurm_qos,
                "mem": None if slurm_mem_gb is None else f"{slurm_mem_gb}GB",
                "setup": list(slurm_setup) or None, "additional_parameters": slurm_additional or None}
    parameters.update({key: value for key, value in optional.items() if value is not None})
    executor.update_parameters(**parameters)
    return executor


def _n_local_gpus() -> int:
    try:
        import torch

        return torch.cuda.device_count()
    except Exception:  # noqa: BLE001 - no torch or no driver: CPU workers
        return 0


def _outcome_of(job, index: int, name: str) -> StepOutcome:
    """The job's StepOutcome, or a failed one when the job itself died (killed, timed out, out of memory)."""
    try:
        return job.result()
    except Exception as error:  # noqa: BLE001 - submitit's UncompletedJobError / FailedJobError
        return StepOutcome(index, name, False, float("nan"), f"{type(error).__name__}: {error}")


def _run_wave_slots(executor, kind: str, wave: Sequence[int], names: Sequence[str], n_workers: int,
                    submit_args: Callable[[int], tuple], report: Callable[[StepOutcome], None],
                    poll_s: float) -> list[StepOutcome]:
    """Local / debug: keep up to ``n_workers`` jobs running, one plan step each, until the wave is done."""
    n_gpus = _n_local_gpus() if kind == "local" else 0
    pending, running, free, outcomes = list(wave), {}, list(range(n_workers)), []
    while pending or running:
        while pending and free:
            slot, index = free.pop(0), pending.pop(0)
            if kind == "local":  # the worker sees one GPU (round-robin over slots), or none on a CPU machine
                gpu = {"gpus_per_node": 1, "visible_gpus": (slot % n_gpus,)} if n_gpus else {"gpus_per_node": 0}
                executor.update_parameters(**gpu)
            running[slot] = (executor.submit(run_step, *submit_args(index)), index)
        done = [slot for slot, (job, _) in running.items() if job.done()]
        for slot in done:
            job, index = running.pop(slot)
            outcome = _outcome_of(job, index, names[index])
            outcomes.append(outcome)
            report(outcome)
            free.append(slot)
        if not done:
            time.sleep(poll_s)
    return outcomes


def run_plan_distributed(
    profile: Any = None,
    executor: str = "local",
    n_workers: int = 2,
    *,
    store: Any = None,
    only: str | None = None,
    folder: str | Path | None = None,
    time_min: int = DEFAULT_TIME_MIN,
    slurm_partition: str | None = None,
    slurm_gpus: int = 1,
    slurm_cpus: int = 8,
    slurm_mem_gb: int | None = None,
    slurm_account: str | None = None,
    slurm_qos: str | None = None,
    slurm_setup: Sequence[str] = (),
    slurm_additional: dict[str, Any] | None = None,
    experiments_class: Callable[..., Any] | None = None,
    poll_s: float = POLL_S,
    log: Callable[[str], None] = print,
) -> list[StepOutcome]:
    """Run every step of a profile's plan as submitit jobs, wave by wave, and wait for them.

    Args:
        profile: a Profile, a profile name, or None (the active profile).
        executor: "local", "slurm" or "debug".
        n_workers: jobs running at once (Slurm: the array's ``%`` parallelism).
        store: the shared results store (default: the default store); workers get its absolute root.
        only: run only the steps whose name contains this text.
        folder: submitit's folder for job pickles and logs (default: :func:`default_folder`).
        time_min: wall-clock limit of each job, minutes.
        slurm_*: sbatch options (partition, GPUs per task, CPUs per task, memory, account, QoS,
            shell lines run before the job, further ``#SBATCH`` options as a dict).
        experiments_class: the class whose ``plan`` is run (default :class:`Experiments`); it must
            be importable by the workers.
    Returns:
        one :class:`StepOutcome` per step run, in completion order. A wave with a failed step stops
        the run (later waves may read its results); rerunning resumes from the store.
    """
    from layercollapse.study.experiments import Experiments

    if n_workers < 1:
        raise ValueError(f"n_workers must be >= 1, got {n_workers}")
    cls = experiments_class or Experiments
    coordinator = cls(profile, store=store, compute=False, progress=False)
    names = [step.name for step in coordinator.plan]
    store_root = str(Path(coordinator.store.root).resolve())
    profile_object = coordinator.profile
    selected = [index for index, name in enumerate(names) if not only or only in name]
    waves = plan_waves(coordinator.plan, selected)
    folder = Path(folder) if folder is not None else default_folder(Path(store_root), profile_object.name)
    runner = make_executor(executor, folder, n_workers, time_min=time_min, slurm_partition=slurm_partition,
                           slurm_gpus=slurm_gpus, slurm_cpus=slurm_cpus, slurm_mem_gb=slurm_mem_gb,
                           slurm_account=slurm_account, slurm_qos=slurm_qos, slurm_setup=slurm_setup,
                           slurm_additional=slurm_additional, job_name=f"layercollapse-{profile_object.name}")
    passed_class = experiments_class  # None: workers import Experiments themselves
    submit_args = lambda index: (profile_object, store_root, index, names[index], passed_class)  # noqa: E731

    def report(outcome: StepOutcome) -> None:
        status = "done   " if outcome.ok else "FAILED "
        log(f"  {status} {outcome.name}  ({outcome.seconds:.1f} s{', ' + outcome.host if outcome.host else ''})")
        if not outcome.ok:
            log("    " + outcome.error.strip().replace("\n", "\n    "))

    log(f"profile '{profile_object.name}', store {store_root}: {len(selected)} step(s) in {len(waves)} wave(s), "
        f"{executor} executor, {n_workers} worker(s), logs in {folder}")
    outcomes: list[StepOutcome] = []
    for number, wave in enumerate(waves, start=1):
        log(f" wave {number}/{len(waves)}: {len(wave)} step(s)")
        if executor == "slurm":
            jobs = runner.map_array(run_step, *zip(*(submit_args(index) for index in wave)))
            log(f"  submitted array {jobs[0].job_id.split('_')[0]} ({len(jobs)} task(s))")
            wave_outcomes = []
            for job, index in zip(jobs, wave):
                wave_outcomes.append(_outcome_of(job, index, names[index]))
                report(wave_outcomes[-1])
        else:
            wave_outcomes = _run_wave_slots(runner, executor, wave, names, n_workers, submit_args, report, poll_s)
        outcomes.extend(wave_outcomes)
        failed = [outcome.name for outcome in wave_outcomes if not outcome.ok]
        if failed:
            log(f" stopping: {len(failed)} step(s) failed in wave {number} ({', '.join(failed)}); "
                "rerun to resume from the store")
            break
    return outcomes


# ----------------------------------------------------------------------- command line


def add_distributed_arguments(parser: argparse.ArgumentParser) -> None:
    """``--workers``, ``--executor`` and the Slurm options of ``reproduce``."""
    group = parser.add_argument_group("distributed (submitit; pip install 'layercollapse[distributed]')")
    group.add_argument("--workers", type=int, default=None,
                       help="run the plan's steps as N parallel jobs (default: one after another in this process)")
    group.add_argument("--executor", choices=EXECUTORS, default=None,
                       help="where the jobs run: local subprocesses (default with --workers), a Slurm job array, "
                            "or debug (in this process)")
    group.add_argument("--job-time", type=int, default=DEFAULT_TIME_MIN, dest="job_time_min",
                       help=f"wall-clock limit per job in minutes (default {DEFAULT_TIME_MIN})")
    group.add_argument("--submitit-folder", default=None, help="job pickles and logs (default: data/cache/submitit/<profile>)")
    group.add_argument("--slurm-partition", default=None)
    group.add_argument("--slurm-gpus", type=int, default=1, help="GPUs per job (default 1)")
    group.add_argument("--slurm-cpus", type=int, default=8, help="CPUs per job (default 8)")
    group.add_argument("--slurm-mem-gb", type=int, default=None)
    group.add_argument("--slurm-account", default=None)
    group.add_argument("--slurm-qos", default=None)
    group.add_argument("--slurm-setup", action="append", default=[],
                       help="shell line run before each job, e.g. 'source .venv/bin/activate' (repeatable)")


def maybe_run_distributed(args: argparse.Namespace) -> int | None:
    """Run ``reproduce`` through submitit when ``--workers`` or ``--executor`` is given; None otherwise
    (and with ``--list``, which only reads the store), so the caller runs the plan in-process."""
    workers, kind = getattr(args, "workers", None), getattr(args, "executor", None)
    if getattr(args, "list", False) or (workers is None and kind is None):
        return None
    kind = kind or "local"
    workers = workers or (256 if kind == "slurm" else 1)
    outcomes = run_plan_distributed(
        args.profile, kind, workers, only=getattr(args, "only", None), folder=args.submitit_folder,
        time_min=args.job_time_min, slurm_partition=args.slurm_partition, slurm_gpus=args.slurm_gpus,
        slurm_cpus=args.slurm_cpus, slurm_mem_gb=args.slurm_mem_gb, slurm_account=args.slurm_account,
        slurm_qos=args.slurm_qos, slurm_setup=args.slurm_setup)
    failed = [outcome for outcome in outcomes if not outcome.ok]
    print(f"{len(outcomes) - len(failed)} step(s) done, {len(failed)} failed", file=sys.stdout, flush=True)
    return 1 if failed else 0
