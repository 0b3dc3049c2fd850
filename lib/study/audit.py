"""``reproduce --audit``: recompute a random, time-boxed sample of the stored results and say whether the site's
conclusions hold on this machine.

A reader who doubts the committed numbers should not need a cold run of several hours. The audit

1. maps every stored result to the plan step that reads it first (:func:`own_results`, computing nothing), and
   estimates what recomputing it costs (:func:`estimated_seconds`: its recorded wall time, else a documented rate);
2. draws, seeded and without replacement, first one result of every kind the budget can afford, then more, cheap
   ones more often (the chance of a result is inversely proportional to its estimated cost), while the estimated
   seconds of the sample stay within the budget (:func:`pick`; when not even the cheapest result fits, it draws
   nothing and :func:`audit` raises :class:`NothingFits`, so the budget is never exceeded by design);
3. recomputes them in a temporary copy of the store that lacks exactly them, one run per plan step in plan order
   (a step's run recomputes every sampled result of that step, and a later step reads the recomputed results of an
   earlier one), saying before each run what it recomputes and its estimated time, and after it the measured time;
   it compares each result with the stored one (``verify.compare_results``: max |Δ|, flipped predictions);
4. decides again every claim whose recorded verdict read a recomputed result, from the recomputed store (the
   ``rejudge`` callable: the site executes the chapters that record those verdicts), and reports whether its status
   changed and whether its deciding number left its recorded interval.

Whether a result should reproduce bit for bit is decided per result (:func:`cpu_kind`): "same kind" when its sidecar
records this machine's CPU model, "another kind" when it records another, "unknown" when it records none (results
migrated from an older store). Only "same kind" results must agree within the tolerance.

The committed store and the recorded verdicts are never written.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
import tempfile
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from layercollapse.progress import progress_bar
from layercollapse.storage.provenance import cpu_model
from layercollapse.storage.store import Store
from layercollapse.study.verify import DEFAULT_TOLERANCE, Comparison, compare_results

#: Seconds a chapter that ``chapter_seconds`` does not know is assumed to take to execute again.
DEFAULT_CHAPTER_SECONDS = 180.0

#: Seconds a result whose sidecar records no wall time (migrated from an older store) is assumed to cost, per kind,
#: on 2 cores of an AMD EPYC (the README's "What a cold run costs" and ``benchmarks/results``): readout: the ten
#: readouts and the tuned lens not timed took about 0.5 h (~160 s each); noise: the sweep took 1,188 s when an audit
#: recomputed it (the cold profile's 0.11 h was low); lm_loss: 141 s alone, 155-274 s recorded; trace: the main
#: model's schedules took 104-1,980 s alone; similarity 550 s, finetune 528 s and margins 1,337 s alone; tuned_lens:
#: a readout of the main model plus 12 short training steps.
FALLBACK_SECONDS = {"readout": 160.0, "tuned_lens": 300.0, "noise": 1200.0, "trace": 900.0, "lm_loss": 200.0,
                    "similarity": 600.0, "finetune": 600.0, "margins": 1300.0}
#: A kind missing from :data:`FALLBACK_SECONDS` (seconds).
UNKNOWN_KIND_SECONDS = 900.0
#: A trace that continued a shorter stored trace (``extends`` in its audit record) recorded the time of the steps it
#: added only; when that shorter trace is no longer stored, recomputing it runs every step. The 20 ARC-Easy
#: phase-targeted traces recorded 5,052 s for their steps 3-6, and their k <= 2 part (removed since) took 1,728 s
#: timed alone: (5,052 + 1,728) / 5,052 = 1.34, rounded up.
EXTENDED_TRACE_FACTOR = 1.35

#: Seconds a plan step's run spends before the results along a trace it recomputes (LM loss, a phase-targeted trace,
#: margins): loading the model and the intact network's pass over the items, which those results' recorded wall
#: times leave out (a readout's includes them). Measured by ``reproduce --audit --minutes 10`` on 2 cores of an Intel
#: Xeon (2026-12-07) as each run's time less its results' recorded times: Qwen2.5-Coder-1.5B 29-55 s, Gemma-3-270M
#: 58 s (its 262k-word unembedding), SmolLM2-135M 9-14 s.
STEP_START_SECONDS = {"qwen2.5-coder-1.5b": 55.0, "gemma3-270m": 60.0, "smollm2-135m": 15.0}
#: Kinds whose recorded wall time covers the whole run of their step (loading the model included).
WHOLE_RUN_KINDS = frozenset({"readout", "tuned_lens"})

#: Per result: the CPU model its sidecar records is this machine's, another one, or none is recorded.
SAME_KIND, ANOTHER_KIND, UNKNOWN_CPU = "same kind", "another kind", "unknown"


@dataclass(frozen=True)
class Candidate:
    """A stored result the audit may recompute: its kind and key, the plan step that computes it (and that step's
    position in the plan), its estimated cost (seconds) and what that estimate rests on, a short description and the
    CPU model its sidecar records (None: not recorded)."""

    kind: str
    key: str
    step: str
    seconds: float
    what: str
    step_index: int = 0
    basis: str = "recorded"
    cpu: str | None = None
    chapters: frozenset[str] = frozenset()  # the chapters to execute again when it is recomputed (its verdicts')
    start_seconds: float = 0.0  # what its step's run costs before it, once per run (STEP_START_SECONDS)


@dataclass(frozen=True)
class Recomputed:
    """One recomputed result: its candidate, the comparison with the stored one, the seconds its plan step's run
    took, whether an earlier row's run of the same step computed it (``reread``: its time is in that row), and
    whether it was computed on this CPU's kind (:func:`cpu_kind`)."""

    candidate: Candidate
    comparison: Comparison
    seconds: float
    cpu: str = UNKNOWN_CPU
    reread: bool = False

    @property
    def strict_failure(self) -> bool:
        """Differs beyond the tolerance (or flips a prediction) although recomputed on the CPU kind that computed it."""
        return self.cpu == SAME_KIND and not self.comparison.agrees()


@dataclass(frozen=True)
class VerdictChange:
    """A claim decided again from recomputed results: the recorded and the new verdict (None: the chapter failed,
    ``error`` says why), whether the status changed and whether the new deciding number lies in the recorded
    interval."""

    key: str
    recorded: object  # claims.verdicts.Verdict
    fresh: object | None
    error: str = ""

    @property
    def status_changed(self) -> bool:
        return self.fresh is None or self.fresh.status != self.recorded.status

    @property
    def value_within(self) -> bool | None:
        """The new deciding number inside the recorded interval (None: no interval or no number)."""
        ci, value = self.recorded.ci, None if self.fresh is None else self.fresh.value
        if ci is None or value is None or self.recorded.value is None:
            return None
        return bool(ci[0] <= value <= ci[1])


class NothingFits(ValueError):
    """Not even the cheapest stored result fits the audit's time budget; ``cheapest`` is that result."""

    def __init__(self, minutes: float, cheapest: Candidate, seconds: float | None = None) -> None:
        seconds = alone_seconds(cheapest) if seconds is None else seconds  # what it needs of the budget
        super().__init__(f"the cheapest, {cheapest.kind} {cheapest.what} (plan step '{cheapest.step}'), is estimated "
                         f"at {duration(seconds)}")
        self.minutes, self.cheapest, self.seconds = minutes, cheapest, seconds


class ReadLog(Store):
    """A store that remembers the (kind, key) of every result loaded from it."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.read: set[tuple[str, str]] = set()

    def load_key(self, kind: str, key: str, **options):
        self.read.add((kind, key))
        return super().load_key(kind, key, **options)


def _quiet(line: str) -> None:
    """Say nothing (the default of the audit's ``say``)."""


def duration(seconds: float) -> str:
    """Seconds for people: "45 s", "4 min 12 s", "1 h 05 min"."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def own_results(experiments, progress: bool = False) -> dict[str, list[tuple[str, str]]]:
    """Plan step name -> the (kind, key) of the stored results it is the first step of the plan to read, in plan order
    (computing nothing: a step whose results are not all stored owns those it found). ``progress``: a bar over the
    steps (it reads every stored result: minutes on the default store)."""
    log = ReadLog(experiments.store.root)
    owned, seen = {}, set()
    for check in progress_bar(experiments.on_store(log, compute=False).plan, "steps mapped", enabled=progress):
        log.read = set()
        try:
            check.run()
        except LookupError:  # not all stored: what it read so far is still its own
            pass
        owned[check.name], seen = sorted(log.read - seen), seen | log.read
    return owned


def result_steps(experiments) -> dict[tuple[str, str], str]:
    """(kind, key) -> the name of the first plan step that reads that stored result (:func:`own_results` inverted)."""
    return {result: name for name, results in own_results(experiments).items() for result in results}


def estimated_seconds(kind: str, provenance: Mapping, stored: Collection[tuple[str, str]]) -> tuple[float, str]:
    """What recomputing a stored result costs (seconds), and what the estimate rests on.

    Args:
        provenance: its sidecar's audit record (``provenance.audit_record``; empty for a migrated result).
        stored: the (kind, key) of every stored result (a trace that extended a shorter one recomputes it too when
            that one is gone).

    Returns:
        its recorded wall time ("recorded"); that times :data:`EXTENDED_TRACE_FACTOR` for a trace whose recorded time
        covers only the steps it added to a shorter trace no longer stored; else the documented rate of its kind
        (:data:`FALLBACK_SECONDS`).
    """
    wall = provenance.get("wall_s")
    if not wall:
        return FALLBACK_SECONDS.get(kind, UNKNOWN_KIND_SECONDS), "no wall time recorded: its kind's documented rate"
    extends = provenance.get("extends")
    if extends and (kind, extends) not in stored:
        return float(wall) * EXTENDED_TRACE_FACTOR, "recorded for its last steps only (it extended a shorter trace)"
    return float(wall), "recorded"


def recorded_cpu(sidecar: Mapping) -> str | None:
    """The CPU model a result's sidecar records (None: no environment recorded, e.g. migrated from an older store)."""
    return ((sidecar.get("provenance") or {}).get("environment") or {}).get("cpu") or None


def cpu_kind(recorded: str | None, here: str) -> str:
    """Whether a result recorded as computed on ``recorded`` (a CPU model, None: not recorded) was computed on this
    machine's kind of CPU ``here``: :data:`SAME_KIND`, :data:`ANOTHER_KIND` or :data:`UNKNOWN_CPU`."""
    if recorded is None:
        return UNKNOWN_CPU
    return SAME_KIND if recorded == here else ANOTHER_KIND


def start_seconds(kind: str, sidecar: Mapping, readout_seconds: Mapping[str, float]) -> float:
    """What the run of a result's plan step costs before the result itself: :data:`STEP_START_SECONDS` of its model,
    else the shortest recorded time of a readout of that model (loading it and one pass over its items; 0 when none
    is recorded); 0 for a kind whose recorded time covers its whole run."""
    if kind in WHOLE_RUN_KINDS:
        return 0.0
    model = _own_spec(sidecar).get("model")
    return STEP_START_SECONDS.get(model, readout_seconds.get(model, 0.0))


def _own_spec(sidecar: Mapping) -> Mapping:
    """The spec a result is about: its own, or its trace's for a result along a trace."""
    spec = sidecar.get("spec", {})
    return spec["trace_spec"] if isinstance(spec.get("trace_spec"), dict) else spec


def describe(sidecar: Mapping) -> str:
    """A result for people: model, task, schedule and seed of its spec (of its trace for a result along a trace)."""
    spec = _own_spec(sidecar)
    parts = [str(spec[name]) for name in ("model", "task", "schedule") if spec.get(name) is not None]
    return " ".join(parts + ([f"seed {spec['seed']}"] if spec.get("seed") is not None else [])) or "-"


def candidates(experiments, progress: bool = False) -> list[Candidate]:
    """Every stored result a plan step reads, in plan order, with its estimated cost (:func:`estimated_seconds`) and
    the CPU its sidecar records. ``progress``: a bar over the plan steps while they are mapped."""
    store = experiments.store
    sidecars = {(kind, sidecar["key"]): sidecar for kind in store.kinds() for sidecar in store.sidecars(kind)}
    readout_seconds: dict[str, float] = {}  # model -> its shortest recorded readout
    for (kind, _), sidecar in sidecars.items():
        wall, model = (sidecar.get("provenance") or {}).get("wall_s"), sidecar.get("spec", {}).get("model")
        if kind == "readout" and wall and model:
            readout_seconds[model] = min(float(wall), readout_seconds.get(model, math.inf))
    found = []
    for index, (step, results) in enumerate(own_results(experiments, progress).items()):
        for kind, key in results:
            sidecar = sidecars.get((kind, key), {})
            seconds, basis = estimated_seconds(kind, sidecar.get("provenance") or {}, sidecars)
            found.append(Candidate(kind, key, step, seconds, describe(sidecar), index, basis, recorded_cpu(sidecar),
                                   start_seconds=start_seconds(kind, sidecar, readout_seconds)))
    return found


def alone_seconds(candidate: Candidate, chapter_seconds: Mapping[str, float] | None = None) -> float:
    """What recomputing ``candidate`` alone costs (seconds): its own estimate and its step's start, and with
    ``chapter_seconds`` executing again the chapters that record the verdicts it feeds."""
    return candidate.seconds + candidate.start_seconds + _chapters_seconds(candidate.chapters, chapter_seconds)


def _chapters_seconds(chapters: Collection[str], chapter_seconds: Mapping[str, float] | None) -> float:
    """What executing ``chapters`` again costs (seconds; :data:`DEFAULT_CHAPTER_SECONDS` for one ``chapter_seconds``
    does not know); 0 where ``chapter_seconds`` is None (chapters not counted)."""
    if chapter_seconds is None:
        return 0.0
    return sum(chapter_seconds.get(chapter, DEFAULT_CHAPTER_SECONDS) for chapter in chapters)


def cheapest_by_kind(pool: Sequence[Candidate], cost=None) -> dict[str, Candidate]:
    """Kind -> its cheapest candidate (the first by key among equally cheap ones); ``cost``: candidate -> seconds
    (default :func:`alone_seconds`)."""
    cost = cost or alone_seconds
    cheapest: dict[str, Candidate] = {}
    for candidate in sorted(pool, key=lambda c: (cost(c), c.key)):
        cheapest.setdefault(candidate.kind, candidate)
    return cheapest


def affordable_kinds(pool: Sequence[Candidate], budget: float, cost=None) -> list[str]:
    """The most kinds that one result each can cover within ``budget`` seconds: the kinds whose cheapest result is
    cheapest, taken while their cheapest results fit together (``cost`` as in :func:`cheapest_by_kind`)."""
    cost = cost or alone_seconds
    covered, total = [], 0.0
    for kind, cheapest in sorted(cheapest_by_kind(pool, cost).items(), key=lambda item: (cost(item[1]), item[0])):
        if total + cost(cheapest) > budget:
            break
        covered.append(kind)
        total += cost(cheapest)
    return covered


def _draw(pool: Sequence[Candidate], limit: float, rng: np.random.Generator, cost=None) -> Candidate | None:
    """One of the candidates costing at most ``limit`` seconds, with a chance inversely proportional to its cost
    (None: none fits; ``cost`` as in :func:`cheapest_by_kind`)."""
    cost = cost or alone_seconds
    fitting = [c for c in pool if cost(c) <= limit]
    if not fitting:
        return None
    weights = np.array([1.0 / max(cost(c), 1.0) for c in fitting])
    return fitting[int(rng.choice(len(fitting), p=weights / weights.sum()))]


def _shuffled(names: Sequence[str], rng: np.random.Generator) -> list[str]:
    """``names`` in a seeded random order."""
    return [names[i] for i in rng.permutation(len(names))]


def pick(pool: Sequence[Candidate], minutes: float, seed: int,
         chapter_seconds: Mapping[str, float] | None = None) -> list[Candidate]:
    """A seeded sample of ``pool`` whose estimated seconds sum to at most ``minutes`` × 60, never a result (kind, key)
    twice, in the order the audit recomputes it (plan order). ``chapter_seconds``: what executing each chapter again
    costs (chapter -> seconds); a result then also costs the chapters it brings in that the sample does not already
    (its ``chapters``: those that record a verdict it was read by), so that deciding the claims again fits too.

    First one result of each kind in :func:`affordable_kinds` (in a seeded order, each drawn among those that leave
    room for the cheapest of the kinds still to cover), then rounds over every kind (in a seeded order), each drawing
    one more result per kind among those that still fit, until none fits. A draw's chance is inversely proportional
    to the result's cost. When not even the cheapest result fits, the sample is empty.
    """
    rng = np.random.default_rng(seed)
    budget = minutes * 60.0
    included: set[str] = set()  # the chapters the sample executes again already
    started: set[str] = set()  # the plan steps the sample runs already

    def cost(candidate: Candidate) -> float:
        start = 0.0 if candidate.step in started else candidate.start_seconds
        return candidate.seconds + start + _chapters_seconds(candidate.chapters - included, chapter_seconds)

    unique = sorted({(c.kind, c.key): c for c in pool}.values(), key=lambda c: (c.kind, c.key))
    left: dict[str, list[Candidate]] = {}
    for candidate in unique:
        left.setdefault(candidate.kind, []).append(candidate)
    chosen: list[Candidate] = []

    def take(candidate: Candidate) -> None:
        nonlocal budget
        budget -= cost(candidate)
        chosen.append(candidate)
        included.update(candidate.chapters)
        started.add(candidate.step)
        left[candidate.kind].remove(candidate)

    covered, cheapest = affordable_kinds(unique, budget, cost), cheapest_by_kind(unique, cost)
    reserve = sum(cost(cheapest[kind]) for kind in covered)
    for kind in _shuffled(covered, rng):
        reserve -= cost(cheapest[kind])
        candidate = _draw(left[kind], budget - reserve, rng, cost) or cheapest[kind]
        if cost(candidate) <= budget:  # the cheapest fits (chapters another kind already brought in only help)
            take(candidate)
    drawn = True
    while drawn:
        drawn = False
        for kind in _shuffled(sorted(left), rng):
            if (candidate := _draw(left[kind], budget, rng, cost)) is not None:
                take(candidate)
                drawn = True
    return sorted(chosen, key=lambda c: (c.step_index, c.step, c.kind, c.key))


def step_runs(chosen: Sequence[Candidate]) -> list[tuple[str, list[Candidate]]]:
    """The chosen results by plan step, in plan order: one run of a step recomputes every chosen result it owns."""
    runs: dict[str, list[Candidate]] = {}
    for candidate in sorted(chosen, key=lambda c: c.step_index):
        runs.setdefault(candidate.step, []).append(candidate)
    return list(runs.items())


def run_seconds(members: Sequence[Candidate]) -> float:
    """The estimated seconds of one run of a plan step that recomputes ``members``: their own seconds and the
    step's start (its largest ``start_seconds``), once."""
    return sum(c.seconds for c in members) + max((c.start_seconds for c in members), default=0.0)


def run_line(number: int, n_runs: int, step: str, members: Sequence[Candidate]) -> str:
    """The line said before a step's run: which results it recomputes and its estimated time, e.g.
    "[2/5] trace qwen2.5-coder-1.5b arc_easy random_in_range seed 3 (est. 4 min 0 s; step 'phase-targeted silent')"."""
    results = ", ".join(f"{c.kind} {c.what}" for c in members)
    estimate = duration(run_seconds(members))
    basis = "" if all(c.basis == "recorded" for c in members) else \
        "; " + "; ".join(sorted({c.basis for c in members if c.basis != "recorded"}))
    return f"[{number}/{n_runs}] {results} (est. {estimate}{basis}; step '{step}')"


def recompute(experiments, chosen: Sequence[Candidate], scratch: Path, tolerance: float = DEFAULT_TOLERANCE,
              say: Callable[[str], None] = _quiet) -> list[Recomputed]:
    """Recompute ``chosen`` in ``scratch`` (a copy of the store without them), one run per plan step in plan order
    (:func:`step_runs`), and compare each with the stored result of the same key. ``say`` gets a line before each
    run (:func:`run_line`) and one after it with the measured time; the steps' own progress bars show as usual."""
    from layercollapse.study.plan import run_plan_steps

    stored = experiments.store
    shutil.copytree(stored.root, scratch)
    fresh = Store(scratch)
    for candidate in chosen:
        fresh.remove(candidate.kind, candidate.key)
    computing = experiments.on_store(fresh, compute=True)
    here, done = cpu_model(), []
    runs = step_runs(chosen)
    for number, (step, members) in enumerate(runs, 1):
        say(run_line(number, len(runs), step, members))
        start = time.perf_counter()
        for _ in run_plan_steps(computing, only=None, names=(step,)):
            pass
        seconds = time.perf_counter() - start
        say(f"      done in {duration(seconds)} (est. {duration(run_seconds(members))})")
        for position, candidate in enumerate(members):
            done.append(Recomputed(candidate, _compare(stored, fresh, candidate, tolerance), seconds,
                                   cpu_kind(candidate.cpu, here), reread=position > 0))
    return done


def _compare(stored: Store, fresh: Store, candidate: Candidate, tolerance: float) -> Comparison:
    """The recomputed ``candidate`` in ``fresh`` against the stored one."""
    again = fresh.load_key(candidate.kind, candidate.key, damaged="raise")
    if again is None:
        return Comparison(candidate.kind, candidate.key, candidate.what,
                          mismatch="its plan step did not compute it again (its spec changed?)")
    return compare_results(stored.load_key(candidate.kind, candidate.key, damaged="raise"), again, tolerance)


def affected_verdicts(records: Mapping[str, tuple[object, list[dict]]], chosen: Sequence[Candidate]) -> list[str]:
    """The keys of the recorded verdicts whose evidence includes a chosen result."""
    wanted = {(c.kind, c.key) for c in chosen}
    return [key for key, (_, evidence) in records.items()
            if any((entry["kind"], entry["key"]) in wanted for entry in evidence)]


@dataclass(frozen=True)
class AuditReport:
    """What the audit recomputed and decided again, and whether the site's conclusions hold here."""

    recomputed: list[Recomputed]
    verdicts: list[VerdictChange]
    tolerance: float

    @property
    def verdict_changed(self) -> bool:
        return any(change.status_changed for change in self.verdicts)

    @property
    def beyond_tolerance(self) -> bool:
        """A result recomputed on the CPU kind that computed it differs beyond the tolerance or flips a prediction
        (results of another or an unknown CPU kind are reported, not held to the tolerance)."""
        return any(item.strict_failure for item in self.recomputed)

    @property
    def exit_code(self) -> int:
        """1 when a verdict changed, or a result differs beyond the tolerance on the CPU kind that computed it."""
        return 1 if self.verdict_changed or self.beyond_tolerance else 0

    def lines(self) -> list[str]:
        """The report as the terminal shows it: one table of results, one of verdicts, and the conclusion."""
        out = [f"{'kind':<11} {'step':<42} {'values':>9} {'max |Δ|':>9} {'flipped':>13} {'time':>8}  {'CPU kind':<12}"]
        for item in self.recomputed:
            c = item.comparison
            flipped = f"{c.n_flips}/{c.n_predictions}" if c.n_predictions else "-"
            seconds = "re-read" if item.reread else f"{item.seconds:.0f}s"
            out.append(f"{c.kind:<11} {item.candidate.step[:42]:<42} {c.n_values:>9,} {c.max_abs:>9.3g} "
                       f"{flipped:>13} {seconds:>8}  {item.cpu:<12}" + (f"  {c.mismatch}" if c.mismatch else ""))
        if any(item.reread for item in self.recomputed):
            out.append("re-read: computed by the same run of its plan step as the row above it (that row's time "
                       "includes it)")
        out.append("")
        out.append(f"{'verdict':<34} {'recorded':<14} {'now':<14} {'number (recorded [CI] -> now)':<40}")
        for change in self.verdicts:
            recorded, fresh = change.recorded, change.fresh
            now = "failed" if fresh is None else fresh.status
            number = _number_text(recorded.value, recorded.ci, None if fresh is None else fresh.value)
            flag = " CHANGED" if change.status_changed else "" if change.value_within in (True, None) else \
                " (number left its interval)"
            out.append(f"{change.key:<34} {recorded.status:<14} {now:<14} {number:<40}{flag}"
                       + (f"  {change.error}" if change.error else ""))
        out.append("")
        out.append(self.summary())
        out.append("The conclusions hold here." if not self.verdict_changed else
                   "A conclusion does not hold here: see the verdicts marked CHANGED.")
        return out

    def summary(self) -> str:
        """How many results were recomputed on which CPU kind, how many differ, and what the verdicts did."""
        kinds = {kind: sum(item.cpu == kind for item in self.recomputed)
                 for kind in (SAME_KIND, ANOTHER_KIND, UNKNOWN_CPU)}
        n_differ = sum(not item.comparison.agrees() for item in self.recomputed)
        n_strict = sum(item.strict_failure for item in self.recomputed)
        return (f"{len(self.recomputed)} result(s) recomputed on {cpu_model()}: {kinds[SAME_KIND]} computed on "
                f"the same CPU kind (held to the tolerance), {kinds[ANOTHER_KIND]} on another kind, "
                f"{kinds[UNKNOWN_CPU]} on an unknown kind (no environment recorded); {n_differ} differ beyond |Δ| "
                f"{self.tolerance:g} or flip a prediction, {n_strict} of them on the same CPU kind. "
                f"{len(self.verdicts)} verdict(s) decided again: "
                f"{sum(c.status_changed for c in self.verdicts)} changed status, "
                f"{sum(c.value_within is False for c in self.verdicts)} moved their number out of its interval.")


def _number_text(value: float | None, ci: Sequence[float] | None, now: float | None) -> str:
    if value is None:
        return "-"
    interval = "" if ci is None else f" [{ci[0]:.3g}, {ci[1]:.3g}]"
    return f"{value:.3g}{interval} -> {'-' if now is None or (isinstance(now, float) and math.isnan(now)) else f'{now:.3g}'}"


def sample_line(chosen: Sequence[Candidate], pool: Sequence[Candidate], minutes: float) -> str:
    """What was drawn: how many results of how many kinds, their estimated time against the budget, and the kinds
    the budget could not afford."""
    total = sum(run_seconds(members) for _, members in step_runs(chosen))
    cheapest = cheapest_by_kind(pool)
    missed = sorted(set(cheapest) - {c.kind for c in chosen})
    line = (f"sample: {len(chosen)} result(s) of {len({c.kind for c in chosen})} kind(s) in {len(step_runs(chosen))} "
            f"plan-step run(s), estimated {duration(total)} of the {minutes:g}-minute budget")
    if missed:
        line += "; too costly for it: " + ", ".join(f"{kind} (cheapest {duration(alone_seconds(cheapest[kind]))})"
                                                  for kind in missed)
    return line


def decide_again(keys: Sequence[str], store: Store, rejudge: Callable[[Sequence[str], Store], Mapping[str, object]],
                 say: Callable[[str], None] = _quiet) -> Mapping[str, object]:
    """``rejudge(keys, store)`` (nothing when no verdict read a recomputed result), said before and after."""
    if not keys:
        return {}
    say(f"deciding again the {len(keys)} verdict(s) that read them (executing the chapters that record them)")
    start = time.perf_counter()
    decided = rejudge(keys, store)
    say(f"      done in {duration(time.perf_counter() - start)}")
    return decided


def audit(experiments, minutes: float, seed: int, rejudge: Callable[[Sequence[str], Store], Mapping[str, object]],
          records: Mapping[str, tuple[object, list[dict]]], tolerance: float = DEFAULT_TOLERANCE,
          workdir: str | Path | None = None, say: Callable[[str], None] = _quiet,
          chapter_of: Callable[[str], str] | None = None,
          chapter_seconds: Mapping[str, float] | None = None) -> AuditReport:
    """Run the audit (module docstring).

    Args:
        experiments: an ``Experiments`` over the store to audit (read, never written).
        minutes: the time budget of the recomputation (estimated: :func:`estimated_seconds`).
        seed: seed of the draw.
        rejudge: (verdict keys, recomputed store) -> {key: the verdict decided again, or an Exception}.
        records: the recorded verdicts and their evidence (``verdicts.load_verdict_records``).
        say: gets a line before and after each part that takes long (the terminal prints it at once).
        chapter_of, chapter_seconds: the chapter that records a verdict (by its key) and what executing each chapter
            costs: with both, the budget holds the whole run (mapping the results, recomputing them, and executing
            again the chapters that decide the claims they feed); without, the recomputation alone.

    Raises:
        NothingFits: not even the cheapest stored result fits ``minutes`` (nothing is recomputed).
    """
    say("finding the plan step that reads each stored result (reads them all, computes nothing)")
    start = time.perf_counter()
    pool = candidates(experiments, progress=experiments.progress)
    whole_run = chapter_of is not None and chapter_seconds is not None
    if whole_run:
        pool = [dataclasses.replace(c, chapters=frozenset(chapter_of(key) for key in affected_verdicts(records, [c])))
                for c in pool]
        minutes -= (time.perf_counter() - start) / 60  # what the mapping took is spent
    counted = chapter_seconds if whole_run else None
    chosen = pick(pool, minutes, seed, counted)
    if pool and not chosen:
        cheapest = min(pool, key=lambda c: alone_seconds(c, counted))
        raise NothingFits(minutes, cheapest, alone_seconds(cheapest, counted))
    say(f"{len(pool)} stored result(s) mapped in {duration(time.perf_counter() - start)}; "
        + sample_line(chosen, pool, minutes))
    with tempfile.TemporaryDirectory(prefix="layercollapse-audit-", dir=workdir) as tmp:
        scratch = Path(tmp) / "store"
        recomputed = recompute(experiments, chosen, scratch, tolerance, say)
        keys = affected_verdicts(records, chosen)
        decided = decide_again(keys, Store(scratch), rejudge, say)
    changes = []
    for key in keys:
        fresh = decided.get(key)
        error = f"{type(fresh).__name__}: {fresh}" if isinstance(fresh, Exception) else "" if fresh else "not recorded"
        changes.append(VerdictChange(key, records[key][0], None if error else fresh, error))
    return AuditReport(recomputed, changes, tolerance)
