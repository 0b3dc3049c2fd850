"""The evidence of the pruned-dynamics claims on one studied setting, assembled from a profile's experiments: the
phase-targeted networks and what pruning did to their transitions, and the verdicts on C5b, C5c, P1 and P1b.

A chapter decides every claim on every studied setting; this module gathers, for one setting, the stored results its
rules read (``Experiments.for_setting``, ``Experiments.schedule_traces``) and applies the rules of
``claims.pruned_transitions``, ``claims.mechanism`` and ``claims.predictions``, so that the chapter only loops.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import pandas as pd
from layercollapse.claims import mechanism, predictions
from layercollapse.claims import pruned_transitions as pruned
from layercollapse.claims.verdicts import Verdict
from layercollapse.measures.phases import Phases


@dataclass
class PrunedDynamics:
    """One studied setting's pruned networks and the rules applied to them.

    Attributes:
        setting: the ``profiles.Setting``; phases: the intact network's phases on it.
        traces: "Silent" / "Decisive" -> the phase-targeted traces (one per seed).
        schedules: ``Experiments.schedule_traces`` of the setting (``random``: a list).
        n_resamples, seed: the bootstrap of every interval.
    """

    setting: Any
    phases: Phases
    traces: dict[str, list]
    schedules: dict[str, Any]
    n_resamples: int = 1000
    seed: int = 0

    @property
    def boot(self) -> dict[str, int]:
        return {"n_resamples": self.n_resamples, "seed": self.seed}

    def describe(self) -> str:
        """The setting's dose-response in one line: items, the intact transition, the phases, k and seeds."""
        layer, interval = self.phases.layer, self.phases.layer_ci
        where = "no transition" if layer is None else f"{layer} (95% CI {interval[0]}–{interval[1]})"
        n_items = len(self.traces["Silent"][0].gold) if self.traces["Silent"] else 0
        k_max = int(self.networks["k"].max()) if len(self.networks) else 0
        return (f"{n_items} evaluation items; intact transition layer {where}, {len(self.phases.silent)} Silent and "
                f"{len(self.phases.decisive)} Decisive layers; k = 1..{k_max}, {len(self.traces['Silent'])} seeds per "
                "phase")

    @cached_property
    def networks(self) -> pd.DataFrame:
        """``pruned_transitions.phase_networks`` of the phase-targeted traces."""
        return pruned.phase_networks(self.traces, self.phases, **self.boot)

    @cached_property
    def retention(self) -> pd.DataFrame:
        """``mechanism.retention_table`` of the networks (C5b's counts and tests per k)."""
        return mechanism.retention_table(self.networks)

    @cached_property
    def transition_odds(self) -> mechanism.TransitionOdds | None:
        """C5c's fit (``mechanism.transition_odds``)."""
        return mechanism.transition_odds(self.networks, **self.boot)

    @cached_property
    def outcome_changes(self) -> pd.DataFrame:
        """The networks that change outcome class under the steepest-rise location, per (phase, k)."""
        return pruned.outcome_changes(self.networks)

    @cached_property
    def collapse_odds(self) -> dict[str, predictions.CollapseOdds | None]:
        """P1b's fits: "random" (random orders and phase-targeted traces: the primary fit) and "greedy" (the schedules
        that choose layers by a criterion)."""
        randoms = [*self.schedules.get("random", []), *self.traces["Silent"], *self.traces["Decisive"]]
        greedy = [trace for name, trace in self.schedules.items() if name != "random"]
        return {"random": predictions.collapse_odds(predictions.collapse_table(randoms, self.phases), **self.boot),
                "greedy": predictions.collapse_odds(predictions.collapse_table(greedy, self.phases), **self.boot)}

    def c5b(self) -> Verdict:
        return mechanism.verdict_c5b(self.networks, self.phases, table=self.retention).on(self.setting)

    def c5b_registered(self) -> Verdict:
        return mechanism.verdict_c5b_registered(self.networks, self.phases, table=self.retention).on(self.setting)

    def c5c(self) -> Verdict:
        return mechanism.verdict_c5c(self.transition_odds, self.phases, model=self.setting.model,
                                     task=self.setting.task).on(self.setting)

    def c5c_registered(self) -> Verdict:
        return mechanism.verdict_c5c_registered(self.transition_odds, self.phases, model=self.setting.model,
                                                task=self.setting.task).on(self.setting)

    def p1(self) -> Verdict:
        return predictions.verdict_p1(self.schedules["iterative"], self.phases, **self.boot).on(self.setting)

    def p1b(self) -> Verdict:
        return predictions.verdict_p1b(self.collapse_odds["random"], self.phases, model=self.setting.model,
                                       greedy_odds=self.collapse_odds["greedy"]).on(self.setting)


def pruned_dynamics(experiments, setting, n_resamples: int = 1000, seed: int = 0) -> PrunedDynamics:
    """The :class:`PrunedDynamics` of one studied ``setting`` of ``experiments`` (the profile's experiments)."""
    found = experiments.for_setting(setting)
    traces = {"Silent": found.phase_traces("silent"), "Decisive": found.phase_traces("decisive")}
    return PrunedDynamics(setting, found.phases(), traces, experiments.schedule_traces(setting), n_resamples, seed)
