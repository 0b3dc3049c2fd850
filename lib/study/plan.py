"""The plan of a profile: every experiment ``reproduce`` runs, in order, with the steps each one reads.

:func:`build_plan` lists the steps (one model loaded at a time; ``needs``: the steps whose results a step reads, which
the distributed waves run first); :func:`run_plan_steps` runs them, or checks that their results are stored;
:func:`missing_experiments` and :func:`unused_results` answer ``reproduce --list``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import pandas as pd
from layercollapse.storage.store import CorruptResultError, Store
from layercollapse.study.experiments import MAIN_SCHEDULES, PHASE_AWARE, Experiments


class PlanStep(NamedTuple):
    """One experiment of a profile's plan.

    Attributes:
        name: what ``reproduce`` prints and ``--only`` matches.
        run: reads the step's results from the store, or computes them (``Experiments(compute=True)``).
        needs: the plan steps whose results it reads (the steps themselves, so that a renamed step keeps its
            dependants; they run in an earlier distributed wave).
    """

    name: str
    run: Callable[[], Any]
    needs: tuple[PlanStep, ...] = ()




def build_plan(experiments: Experiments) -> list[PlanStep]:
    """Every experiment of ``experiments``' profile, in the order ``reproduce`` runs them (one model loaded at a time),
    each with the steps whose results it reads (``needs``: the distributed waves run those first)."""
    p = experiments.profile
    main_task = p.tasks[0]
    main_readout = PlanStep(f"readout {p.main_model} {main_task}", lambda: experiments.readout())  # the intact phases
    steps = [main_readout, PlanStep("noise sweep", lambda: experiments.noise_sweep(), needs=(main_readout,))]
    for task in p.phase_tasks:
        readout = main_readout
        if task != main_task:  # the intact phases of a second task: its readout comes first
            readout = PlanStep(f"readout {p.main_model} {task}", lambda t=task: experiments.readout(task=t))
            steps.append(readout)
        for phase in ("silent", "decisive"):
            name = f"phase-targeted {phase}" + ("" if task == main_task else f" {task}")
            steps.append(PlanStep(name, lambda ph=phase, t=task: experiments.phase_traces(ph, task=t), needs=(readout,)))
    main_iterative = PlanStep(f"iterative with readouts {p.main_model}", lambda: experiments.dynamics_trace())
    steps.append(main_iterative)
    for schedule in MAIN_SCHEDULES[1:]:
        steps.append(PlanStep(f"{schedule} {p.main_model}", lambda s=schedule: experiments.main_trace(s),
                              needs=(main_readout,) if schedule in PHASE_AWARE else ()))
    if p.main_model != p.pruning_model:  # LM loss (R3), similarity (C2), greedy margins, fine-tuning (C7) there too
        steps.append(PlanStep(f"LM loss along iterative {p.main_model}",
                              lambda: experiments.lm_loss_along(experiments.main_trace("iterative")), needs=(main_iterative,)))
        steps.append(PlanStep(f"similarity along iterative {p.main_model}",
                              lambda: experiments.similarity_along(experiments.main_trace("iterative")), needs=(main_iterative,)))
        steps.append(PlanStep(f"greedy margins along iterative {p.main_model}",
                              lambda: experiments.greedy_margins(experiments.main_trace("iterative")), needs=(main_iterative,)))
        if p.finetune_main is not None:
            steps.append(PlanStep(f"fine-tuning recovery {p.main_model}",
                                  lambda: experiments.finetune_recovery(p.main_model), needs=(main_iterative,)))
        if "random" in p.schedules:
            steps.append(PlanStep(f"random baseline {p.main_model}",
                                  lambda: [experiments.lm_loss_along(t) for t in experiments.random_traces(p.main_model)]))
    pruning_traces = {}
    for schedule in p.schedules:
        if schedule == "random":
            step = PlanStep("random baseline", lambda: [experiments.lm_loss_along(t) for t in experiments.random_traces()])
        else:
            step = PlanStep(f"trace {schedule}", lambda s=schedule: experiments.lm_loss_along(experiments.trace(s)))
        pruning_traces[schedule] = step
        steps.append(step)
    # they read the pruning model's iterative trace, which its "trace iterative" step stores where there is one
    iterative = tuple(step for schedule, step in pruning_traces.items() if schedule == "iterative")
    steps += [PlanStep("similarity along iterative", lambda: experiments.similarity_along(experiments.trace("iterative")),
                       needs=iterative),
              PlanStep("greedy margins along iterative", lambda: experiments.greedy_margins(experiments.trace("iterative")),
                       needs=iterative)]
    if p.finetune is not None:
        steps.append(PlanStep("fine-tuning recovery", lambda: experiments.finetune_recovery(), needs=iterative))
    for run in p.models:
        for task in p.tasks:
            if run.name != p.main_model or (task != main_task and task not in p.phase_tasks):
                steps.append(PlanStep(f"readout {run.name} {task}", lambda m=run.name, t=task: experiments.readout(m, t)))
    steps.append(PlanStep(f"tuned lens {p.main_model}", lambda: experiments.tuned_readout()))
    return steps + setting_steps(experiments, steps)





def setting_steps(experiments: Experiments, steps: Sequence[PlanStep]) -> list[PlanStep]:
    """The steps of the study's settings besides the main one: the intact readout of every candidate setting the
    ``steps`` do not read already, then one step per candidate that runs its pruning study where it is studied
    (``Experiments.study``: the choice reads every candidate's readout, so each study step needs them all, and the
    phase-targeted steps of the main model, whose traces the studies of its phase tasks read)."""
    p = experiments.profile
    candidates = sorted((setting for setting in p.candidate_settings if setting != p.main_setting),
                        key=lambda setting: setting.model)  # one model loaded at a time
    # the profile's own readouts are the candidates scored as the profile scores that model
    own = {(run.name, task) for run in p.models for task in p.tasks} | {(s.model, s.task) for s in p.phase_settings}
    added = []
    for setting in candidates:
        if (setting.model, setting.task) in own and setting.format == p.run_of(setting.model).format \
                and setting.shots == p.shots:
            continue
        added.append(PlanStep(f"readout {setting.key}", lambda s=setting: experiments.for_setting(s).readout()))
    # the choice reads every readout; the main model's phase tasks' studies read their dose-response, which the plan's
    # phase-targeted steps compute (a distributed wave runs those first, not beside it)
    needs = tuple(step for step in (*steps, *added) if step.name.startswith(("readout ", "phase-targeted ")))
    studies = [PlanStep(f"study {setting.key}", lambda s=setting: experiments.study(s), needs=needs)
               for setting in candidates]
    return added + studies


# ------------------------------------------------------------------ running the plan


def run_plan_steps(experiments, only: str | None = None, check_only: bool = False, names: Sequence[str] = ()):
    """Run the plan's steps (those whose name contains ``only``, or is one of ``names``); yield (name, problem,
    seconds) for each.

    ``problem`` is None for a stored (or just computed) step. ``check_only``: ``experiments`` must not
    compute; a step whose result is missing yields its ``MissingResult``, one with damaged files its
    ``CorruptResultError`` (otherwise a missing result is computed, and every error propagates).
    """
    for name, run, _ in experiments.plan:
        if (only and only not in name) or (names and name not in names):
            continue
        start = time.perf_counter()
        try:
            run()
        except (LookupError, CorruptResultError) as problem:
            if not check_only:
                raise
            yield name, problem, time.perf_counter() - start
            continue
        yield name, None, time.perf_counter() - start


def missing_experiments(profile) -> list[str]:
    """Names of the plan steps of ``profile`` (a name or a loaded Profile) whose results are not all stored
    (computes nothing).

    Raises:
        CorruptResultError: a stored result's files are damaged (its message names the file and the fix).
    """
    experiments = Experiments(profile, compute=False, progress=False)
    missing = []
    for name, problem, _ in run_plan_steps(experiments, check_only=True):
        if isinstance(problem, CorruptResultError):
            raise problem
        if problem is not None:
            missing.append(name)
    return missing


def unused_results(experiments: Experiments) -> pd.DataFrame:
    """The current results of the experiments' store that no step of the plan reads (``store.list_results`` rows):
    results of an older spec, left behind when a spec changed. Runs the plan without computing.

    Raises:
        MissingResult, CorruptResultError: a step's results are not all stored, or are damaged; what the plan reads
            is then not known, so nothing can be called unused.
    """
    for _, problem, _ in run_plan_steps(experiments.on_store(experiments.store, compute=False), check_only=True):
        if problem is not None:
            raise problem
    return unread_results(experiments.store)


def unread_results(store: Store) -> pd.DataFrame:
    """The current results of ``store`` this process has not read (``store.results_read``): after a run of the
    whole plan that found everything stored, the results no step reads."""
    from layercollapse.storage.provenance import current_results
    from layercollapse.storage.store import results_read

    read = {(result["kind"], result["key"]) for result in results_read(store)}
    current = current_results(store)
    return current[[(kind, key) not in read for kind, key in zip(current["kind"], current["key"])]].reset_index(drop=True)
