"""``reproduce --audit``: recompute a random, time-boxed sample of the stored results and say whether the site's
conclusions hold on this machine.

A reader who doubts the committed numbers should not need a cold run of several hours. The audit

1. maps every stored result to the plan step that reads it (:func:`result_steps`, computing nothing);
2. draws, seeded, results of every kind, cheap ones more often (the chance of a result is inversely proportional to
   its estimated cost), until the time budget is spent (:func:`pick`);
3. recomputes them in a temporary copy of the store that lacks exactly them, and compares each with the stored one
   (``verify.compare_results``: max |Δ|, flipped predictions);
4. decides again every claim whose recorded verdict read a recomputed result, from the recomputed store (the
   ``rejudge`` callable: the site executes the chapters that record those verdicts), and reports whether its status
   changed and whether its deciding number left its recorded interval.

The committed store and the recorded verdicts are never written.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from layercollapse.storage.provenance import cpu_model
from layercollapse.storage.store import Store
from layercollapse.study.verify import DEFAULT_TOLERANCE, Comparison, compare_results

#: Seconds a result whose sidecar records no wall time is assumed to cost, per kind (measured on the default
#: profile's CPU for its models; the audit only uses them to fit its budget).
FALLBACK_SECONDS = {"readout": 60.0, "tuned_lens": 300.0, "noise": 400.0, "trace": 900.0, "lm_loss": 120.0,
                    "similarity": 600.0, "finetune": 600.0, "margins": 1300.0}


@dataclass(frozen=True)
class Candidate:
    """A stored result the audit may recompute: its kind and key, the plan step that computes it, its estimated
    cost (seconds) and a short description."""

    kind: str
    key: str
    step: str
    seconds: float
    what: str


@dataclass(frozen=True)
class Recomputed:
    """One recomputed result: its candidate, the comparison with the stored one, and the seconds it took."""

    candidate: Candidate
    comparison: Comparison
    seconds: float


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


class ReadLog(Store):
    """A store that remembers the (kind, key) of every result loaded from it."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.read: set[tuple[str, str]] = set()

    def load_key(self, kind: str, key: str, **options):
        self.read.add((kind, key))
        return super().load_key(kind, key, **options)


def own_results(experiments) -> dict[str, list[tuple[str, str]]]:
    """Plan step name -> the (kind, key) of the stored results it is the first step of the plan to read (computing
    nothing: a step whose results are not all stored owns those it found)."""
    log = ReadLog(experiments.store.root)
    owned, seen = {}, set()
    for check in experiments.on_store(log, compute=False).plan:
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


def candidates(experiments) -> list[Candidate]:
    """Every stored result a plan step reads, with its estimated cost: the wall time its sidecar recorded, else the
    median recorded for its kind in this store, else :data:`FALLBACK_SECONDS`."""
    store = experiments.store
    sidecars = {(kind, sidecar["key"]): sidecar for kind in store.kinds() for sidecar in store.sidecars(kind)}
    recorded: dict[str, list[float]] = {}
    for (kind, _), sidecar in sidecars.items():
        wall = (sidecar.get("provenance") or {}).get("wall_s")
        if wall:
            recorded.setdefault(kind, []).append(float(wall))
    found = []
    for (kind, key), step in result_steps(experiments).items():
        sidecar = sidecars.get((kind, key), {})
        wall = (sidecar.get("provenance") or {}).get("wall_s")
        seconds = float(wall) if wall else float(np.median(recorded[kind])) if kind in recorded else \
            FALLBACK_SECONDS.get(kind, 600.0)
        spec = sidecar.get("spec", {})
        spec = spec.get("trace_spec", spec) if isinstance(spec.get("trace_spec"), dict) else spec
        what = " ".join(str(spec[name]) for name in ("model", "task", "schedule", "seed") if spec.get(name) is not None)
        found.append(Candidate(kind, key, step, seconds, what))
    return found


def pick(pool: Sequence[Candidate], minutes: float, seed: int) -> list[Candidate]:
    """A seeded sample of ``pool`` that fits ``minutes``: rounds over the kinds (in a seeded order), each round
    drawing one result per kind among those that still fit, with a chance inversely proportional to its cost."""
    rng = np.random.default_rng(seed)
    budget = minutes * 60.0
    by_kind: dict[str, list[Candidate]] = {}
    for candidate in sorted(pool, key=lambda c: (c.kind, c.key)):
        by_kind.setdefault(candidate.kind, []).append(candidate)
    chosen: list[Candidate] = []
    while True:
        drawn = False
        for kind in rng.permutation(sorted(by_kind)):
            fitting = [c for c in by_kind[kind] if c not in chosen and c.seconds <= budget]
            if not fitting:
                continue
            weights = np.array([1.0 / max(c.seconds, 1.0) for c in fitting])
            candidate = fitting[int(rng.choice(len(fitting), p=weights / weights.sum()))]
            chosen.append(candidate)
            budget -= candidate.seconds
            drawn = True
        if not drawn:
            return chosen


def recompute(experiments, chosen: Sequence[Candidate], scratch: Path,
              tolerance: float = DEFAULT_TOLERANCE) -> list[Recomputed]:
    """Recompute ``chosen`` in ``scratch`` (a copy of the store without them) through their plan steps, and compare
    each with the stored result of the same key."""
    from layercollapse.study.plan import run_plan_steps

    stored = experiments.store
    shutil.copytree(stored.root, scratch)
    fresh = Store(scratch)
    for candidate in chosen:
        fresh.remove(candidate.kind, candidate.key)
    computing = experiments.on_store(fresh, compute=True)
    done = []
    for candidate in chosen:
        start = time.perf_counter()
        for _ in run_plan_steps(computing, only=None, names=(candidate.step,)):
            pass
        seconds = time.perf_counter() - start
        again = fresh.load_key(candidate.kind, candidate.key, damaged="raise")
        comparison = (compare_results(stored.load_key(candidate.kind, candidate.key, damaged="raise"), again, tolerance)
                      if again is not None else
                      Comparison(candidate.kind, candidate.key, candidate.what,
                                 mismatch="its plan step did not compute it again (its spec changed?)"))
        done.append(Recomputed(candidate, comparison, seconds))
    return done


def affected_verdicts(records: Mapping[str, tuple[object, list[dict]]], chosen: Sequence[Candidate]) -> list[str]:
    """The keys of the recorded verdicts whose evidence includes a chosen result."""
    wanted = {(c.kind, c.key) for c in chosen}
    return [key for key, (_, evidence) in records.items()
            if any((entry["kind"], entry["key"]) in wanted for entry in evidence)]


def same_cpu_kind(store: Store, chosen: Sequence[Candidate]) -> bool:
    """Whether this machine's CPU is the one the chosen results were computed on (their sidecars' ``cpu``, where
    recorded); results computed elsewhere, or with no record, are not expected to reproduce bit for bit."""
    cpus = set()
    for candidate in chosen:
        sidecar = json.loads((store.directory(candidate.kind) / f"{candidate.key}.json").read_text())
        cpus.add(((sidecar.get("provenance") or {}).get("environment") or {}).get("cpu"))
    return cpus == {cpu_model()}


@dataclass(frozen=True)
class AuditReport:
    """What the audit recomputed and decided again, and whether the site's conclusions hold here."""

    recomputed: list[Recomputed]
    verdicts: list[VerdictChange]
    same_cpu: bool
    tolerance: float

    @property
    def verdict_changed(self) -> bool:
        return any(change.status_changed for change in self.verdicts)

    @property
    def beyond_tolerance(self) -> bool:
        return any(not item.comparison.agrees() for item in self.recomputed)

    @property
    def exit_code(self) -> int:
        """1 when a verdict changed, or a result differs beyond the tolerance on the CPU kind that computed it."""
        return 1 if self.verdict_changed or (self.same_cpu and self.beyond_tolerance) else 0

    def lines(self) -> list[str]:
        """The report as the terminal shows it: one table of results, one of verdicts, and the conclusion."""
        out = [f"{'kind':<11} {'step':<42} {'values':>9} {'max |Δ|':>9} {'flipped':>13} {'time':>7}"]
        for item in self.recomputed:
            c = item.comparison
            flipped = f"{c.n_flips}/{c.n_predictions}" if c.n_predictions else "-"
            out.append(f"{c.kind:<11} {item.candidate.step[:42]:<42} {c.n_values:>9,} {c.max_abs:>9.3g} "
                       f"{flipped:>13} {item.seconds:>6.0f}s" + (f"  {c.mismatch}" if c.mismatch else ""))
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
        n_differ = sum(not item.comparison.agrees() for item in self.recomputed)
        cpu = "the CPU kind that computed them" if self.same_cpu else "another CPU kind than the one that computed them"
        out.append("")
        out.append(f"{len(self.recomputed)} result(s) recomputed on {cpu} ({cpu_model()}); {n_differ} differ beyond "
                   f"|Δ| {self.tolerance:g} or flip a prediction. {len(self.verdicts)} verdict(s) decided again: "
                   f"{sum(c.status_changed for c in self.verdicts)} changed status, "
                   f"{sum(c.value_within is False for c in self.verdicts)} moved their number out of its interval.")
        out.append("The conclusions hold here." if not self.verdict_changed else
                   "A conclusion does not hold here: see the verdicts marked CHANGED.")
        return out


def _number_text(value: float | None, ci: Sequence[float] | None, now: float | None) -> str:
    if value is None:
        return "-"
    interval = "" if ci is None else f" [{ci[0]:.3g}, {ci[1]:.3g}]"
    return f"{value:.3g}{interval} -> {'-' if now is None or (isinstance(now, float) and math.isnan(now)) else f'{now:.3g}'}"


def audit(experiments, minutes: float, seed: int, rejudge: Callable[[Sequence[str], Store], Mapping[str, object]],
          records: Mapping[str, tuple[object, list[dict]]], tolerance: float = DEFAULT_TOLERANCE,
          workdir: str | Path | None = None) -> AuditReport:
    """Run the audit (module docstring).

    Args:
        experiments: an ``Experiments`` over the store to audit (read, never written).
        minutes: the time budget of the recomputation (estimated from the results' recorded wall times).
        seed: seed of the draw.
        rejudge: (verdict keys, recomputed store) -> {key: the verdict decided again, or an Exception}.
        records: the recorded verdicts and their evidence (``verdicts.load_verdict_records``).
    """
    chosen = pick(candidates(experiments), minutes, seed)
    with tempfile.TemporaryDirectory(prefix="layercollapse-audit-", dir=workdir) as tmp:
        scratch = Path(tmp) / "store"
        recomputed = recompute(experiments, chosen, scratch, tolerance)
        keys = affected_verdicts(records, chosen)
        decided = rejudge(keys, Store(scratch)) if keys else {}
    changes = []
    for key in keys:
        fresh = decided.get(key)
        error = f"{type(fresh).__name__}: {fresh}" if isinstance(fresh, Exception) else "" if fresh else "not recorded"
        changes.append(VerdictChange(key, records[key][0], None if error else fresh, error))
    return AuditReport(recomputed, changes, same_cpu_kind(experiments.store, chosen), tolerance)
