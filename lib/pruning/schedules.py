"""Pruning schedules: which layer goes at each step. One :class:`Schedule` record per schedule, in one registry.

A schedule is a *planner* ``(step, kept) -> Removal`` built from what it needs (:class:`PlanInputs`), driven by
one loop (``engine.prune``), which scores the evaluation items after each step:

- ``iterative`` (the paper's; SLEB-style greedy): try removing each kept layer, keep the
  removal that hurts a calibration criterion least (``dm``, ``acc``, or ``lm_loss`` on passages).
- ``block_influence`` (ShortGPT): remove layers by ascending BI = 1 - mean cos(input, output).
- ``angular_distance`` (Gromov et al. 2024): for block size n, remove the contiguous block
  [l, l+n) whose input and output are closest in angle at the last token; one step per n.
- ``reverse``: the last layer, then the one before, ... (equals the logit-lens readout).
- ``random``: a seeded random order; ``random_in_range``: k random layers of an index range.
- ``decisive_first`` (phase-aware, beyond the paper): Iterative Pruning restricted to ``layers`` (the
  intact network's Decisive Phase, ``measures.phases.Phases.decisive``) until they are gone, then over all
  kept layers.

Adding a schedule is one :class:`Schedule` record and its planner, passed to :func:`register_schedule`: the
command line's choices, the profiles' validation, the plan, the specs and the plots' colours read the registry.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from layercollapse.data.tasks import Item
from layercollapse.measures import metrics
from layercollapse.progress import progress_bar
from layercollapse.pruning.encoding import EncodedSet
from layercollapse.pruning.prefix import PrefixRunner
from layercollapse.pruning.statistics import angular_distances, block_influence
from torch import nn

#: Greedy criteria: name -> +1 when higher is better, -1 when lower is better.
CRITERIA = {"dm": 1, "acc": 1, "lm_loss": -1}


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
    candidates, scores = candidate_scores(calibration, kept, first)
    return candidates, [criterion(values) for values in scores]  # [n_candidates]


def candidate_scores(runner: PrefixRunner, kept: Sequence[int], first: Sequence[int] = (), layerwise: bool = False,
                     progress: bool | str = False) -> tuple[list[int], list]:
    """The networks of one greedy step from ``kept``: (candidate layers, the scores without each of them).

    Each candidate network starts from the remembered prefix of ``kept`` (computed once here), so removing layer j
    runs only the layers after j. The candidates are the kept layers of ``first`` while any is kept, else every kept
    layer. Scores: float32 [n_rows, n_options] per candidate; ``layerwise``: (scores, readout float32
    [n_kept, n_rows, n_options]) per candidate, as :meth:`PrefixRunner.run_layerwise`.
    """
    kept, first = tuple(kept), frozenset(first)
    runner.remember(kept, layerwise=layerwise)  # the prefix every candidate starts from
    candidates = [layer for layer in kept if layer in first] or list(kept)
    run = runner.run_layerwise if layerwise else runner.run
    return candidates, [run(without(kept, layer)) for layer in progress_bar(candidates, progress or "candidates",
                                                                           enabled=bool(progress))]


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


# --------------------------------------------------------------------------- the registry


@dataclass(frozen=True)
class PlanInputs:
    """What a planner may read to plan one trace.

    Attributes:
        model: the network pruned; n_layers: its layers.
        n_steps: steps to plan, step 0 (the intact network) included.
        seed: seed of a random schedule (numpy ``default_rng``).
        calibration: the encoded calibration set (None for a schedule that reads none), its items or passages
            (``calibration_items``) and whether its prefix may be cached (``cache_calibration``).
        criterion: greedy criterion (:data:`CRITERIA`).
        layers: the schedule's layer set (its range, or the layers it removes first), original indices.
    """

    model: nn.Module
    n_layers: int
    n_steps: int
    seed: int = 0
    calibration: EncodedSet | None = None
    calibration_items: Sequence[Item] | Sequence[str] = ()
    cache_calibration: bool = True
    criterion: str = "dm"
    layers: Sequence[int] | None = None


@dataclass(frozen=True)
class Schedule:
    """One pruning schedule: what it is called, what it needs, and its planner.

    Attributes:
        name: its key (specs, the command line's ``--schedule``, profiles).
        label: how the site names it.
        planner: :class:`PlanInputs` -> :class:`Plan`.
        calibration: it reads calibration items or passages (``"sequences"``: one sequence per option, as BI and
            the angular distance average over sequences' tokens; ``"items"``: as scored; None: none).
        greedy: it takes a greedy criterion (:data:`CRITERIA`).
        seeded: its order depends on a seed (one trace per seed).
        layers: what its layer set is: ``"range"`` (the layers it removes, in random order), ``"first"`` (the
            layers it removes first, greedily among themselves), or None (it takes none).
        color: its colour in every chart of the site (the colour-blind-safe Okabe-Ito palette).
    """

    name: str
    label: str
    planner: Callable[[PlanInputs], Plan]
    calibration: Literal["items", "sequences"] | None = None
    greedy: bool = False
    seeded: bool = False
    layers: Literal["range", "first"] | None = None
    color: str = "#000000"

    def most_removable(self, n_layers: int, layers: Sequence[int] | None = None) -> int:
        """Layers a trace removes by default: all but one, or every layer of its range."""
        return min(len(layers or ()), n_layers - 1) if self.layers == "range" else n_layers - 1


#: Every schedule the library runs, by name, in the order the command line lists them.
SCHEDULES: dict[str, Schedule] = {}


def register_schedule(schedule: Schedule) -> Schedule:
    """Add ``schedule`` to :data:`SCHEDULES` (replacing one of the same name); returns it."""
    SCHEDULES[schedule.name] = schedule
    return schedule


def get_schedule(name: str) -> Schedule:
    """The registered schedule ``name``; one clear line naming the known ones otherwise."""
    if name not in SCHEDULES:
        raise ValueError(f"Unknown schedule '{name}'; use one of {', '.join(SCHEDULES)}")
    return SCHEDULES[name]


def schedule_labels() -> dict[str, str]:
    """Schedule name -> how the site names it, for every registered schedule."""
    return {name: schedule.label for name, schedule in SCHEDULES.items()}


def _greedy(inputs: PlanInputs, first: Sequence[int] = ()) -> Plan:
    runner = PrefixRunner(inputs.model, inputs.calibration, inputs.cache_calibration)
    criterion = calibration_criterion(inputs.criterion, inputs.calibration, inputs.calibration_items)
    return Plan(greedy_planner(runner, criterion, CRITERIA[inputs.criterion], first=first), inputs.n_steps)


def _block_influence(inputs: PlanInputs) -> Plan:
    influence = block_influence(inputs.model, inputs.calibration)  # [n_layers]
    order = np.argsort(influence, kind="stable")
    return Plan(order_planner(order, influence[order]), inputs.n_steps)


def _angular_distance(inputs: PlanInputs) -> Plan:
    return Plan(block_planner(angular_distances(inputs.model, inputs.calibration)), inputs.n_steps, nested=False)


def _reverse(inputs: PlanInputs) -> Plan:
    return Plan(order_planner(range(inputs.n_layers - 1, -1, -1)), inputs.n_steps)


def _random(inputs: PlanInputs) -> Plan:
    return Plan(order_planner(np.random.default_rng(inputs.seed).permutation(inputs.n_layers)), inputs.n_steps)


def _decisive_first(inputs: PlanInputs) -> Plan:
    return _greedy(inputs, first=inputs.layers)


def _random_in_range(inputs: PlanInputs) -> Plan:
    # a few steps, each run from the intact network's prefix, which stays cached for the next seed
    order = np.random.default_rng(inputs.seed).permutation(sorted(inputs.layers))
    return Plan(order_planner(order), inputs.n_steps, nested=False)


OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
for _schedule in (
    Schedule("iterative", "Iterative Pruning", _greedy, calibration="items", greedy=True, color=OKABE_ITO[0]),
    Schedule("block_influence", "ShortGPT BI", _block_influence, calibration="sequences", color=OKABE_ITO[1]),
    Schedule("angular_distance", "angular distance", _angular_distance, calibration="sequences",
             color=OKABE_ITO[3]),
    Schedule("reverse", "reverse order", _reverse, color=OKABE_ITO[5]),
    Schedule("random", "random order", _random, seeded=True, color=OKABE_ITO[7]),
    Schedule("random_in_range", "random within a range", _random_in_range, seeded=True, layers="range",
             color=OKABE_ITO[6]),
    Schedule("decisive_first", "Decisive Phase first", _decisive_first, calibration="items", greedy=True,
             layers="first", color=OKABE_ITO[2]),
):
    register_schedule(_schedule)
