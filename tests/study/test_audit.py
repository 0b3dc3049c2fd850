"""``reproduce --audit`` on the golden store: a seeded sample that fits its time budget, recomputed in a copy of the
store, compared with the stored results, and every claim that read them decided again."""

from __future__ import annotations

import dataclasses
import hashlib
import shutil

import pandas as pd
import pytest
from golden import GOLDEN_PROFILE, GOLDEN_STORE, golden_loader
from layercollapse.claims.verdicts import Verdict
from layercollapse.storage.provenance import COMPUTE_VERSIONS
from layercollapse.storage.store import Store
from layercollapse.study import audit as audit_module
from layercollapse.study.audit import (
    ANOTHER_KIND,
    FALLBACK_SECONDS,
    SAME_KIND,
    UNKNOWN_CPU,
    UNKNOWN_KIND_SECONDS,
    AuditReport,
    Candidate,
    NothingFits,
    Recomputed,
    affordable_kinds,
    audit,
    candidates,
    cpu_kind,
    duration,
    estimated_seconds,
    pick,
    recorded_cpu,
    run_line,
    run_seconds,
    step_runs,
)
from layercollapse.study.experiments import Experiments
from layercollapse.study.verify import Comparison


def digest(root) -> str:
    return hashlib.sha256(b"".join(path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file())).hexdigest()


@pytest.fixture
def golden_copy(tmp_path):
    root = tmp_path / "committed"
    shutil.copytree(GOLDEN_STORE, root)
    return Experiments(GOLDEN_PROFILE, store=Store(root), compute=False, progress=False, load_model=golden_loader())


@pytest.mark.slow
def test_the_sample_is_seeded_fits_its_budget_and_draws_every_kind_it_can(golden_copy):
    pool = candidates(golden_copy)
    assert {candidate.kind for candidate in pool} == set(COMPUTE_VERSIONS)  # every stored kind has a plan step
    assert all(candidate.seconds > 0 and candidate.step for candidate in pool)
    chosen = pick(pool, minutes=0.1, seed=0)
    assert sum(run_seconds(members) for _, members in step_runs(chosen)) <= 6.0
    assert chosen == pick(pool, minutes=0.1, seed=0) and chosen != pick(pool, minutes=0.1, seed=1)
    everything = pick(pool, minutes=10**6, seed=0)
    assert sorted((c.kind, c.key) for c in everything) == sorted((c.kind, c.key) for c in pool)  # all fit: all drawn
    cheapest = min(pool, key=lambda c: c.seconds + c.start_seconds)
    alone = (cheapest.seconds + cheapest.start_seconds) / 60
    assert pick(pool, minutes=alone, seed=3) == [cheapest]  # only the cheapest fits, its step's start included


@pytest.mark.slow
def test_the_audit_recomputes_its_sample_and_decides_again_every_claim_that_read_it(golden_copy, tmp_path, monkeypatch):
    before = digest(golden_copy.store.root)
    chosen = pick(candidates(golden_copy), minutes=0.1, seed=0)
    read = chosen[0]
    recorded = Verdict("C1", "supported", "excess", 0.5, "Recorded.", ci=(0.4, 0.6), n=6, model="tiny-llama-letter")
    untouched = Verdict("C4", "inconclusive", "drop", None, "Not read.")
    records = {recorded.key: (recorded, [{"kind": read.kind, "key": read.key, "digest": "-"}]),
               untouched.key: (untouched, [{"kind": "readout", "key": "0000000000000000", "digest": "-"}])}
    asked = []

    def same(keys, store):
        asked.append((list(keys), store.root))
        assert store.root != golden_copy.store.root  # decided from the recomputed copy
        return {key: records[key][0] for key in keys}

    monkeypatch.setattr(audit_module, "cpu_model", lambda: "AMD EPYC")  # a machine of the kind that computed some
    said = []
    report = audit(golden_copy, 0.1, 0, same, records, workdir=tmp_path, say=said.append)
    assert [item.cpu for item in report.recomputed] == [
        SAME_KIND if item.candidate.cpu == "AMD EPYC" else ANOTHER_KIND for item in report.recomputed]
    starts = [line for line in said if line.startswith("[")]
    assert len(starts) == len({c.step for c in chosen}) and all(
        said[said.index(line) + 1].startswith("      done in ") for line in starts)
    assert [(item.candidate.kind, item.candidate.key) for item in report.recomputed] == [(c.kind, c.key) for c in chosen]
    assert all(item.comparison.agrees() and item.comparison.n_values > 0 for item in report.recomputed)
    assert [change.key for change in report.verdicts] == [recorded.key] and asked[0][0] == [recorded.key]
    assert not report.verdict_changed and report.exit_code == 0 and report.lines()[-1] == "The conclusions hold here."
    assert digest(golden_copy.store.root) == before  # the audited store is never written

    moved = audit(golden_copy, 0.1, 0, lambda keys, store: {
        key: dataclasses.replace(records[key][0], status="not supported", value=0.1) for key in keys}, records,
                  workdir=tmp_path)
    assert moved.exit_code == 1 and moved.verdicts[0].value_within is False
    assert any(line.startswith(recorded.key) and line.endswith("CHANGED") for line in moved.lines())


# ------------------------------------------------------------------ the budget, the draw and the CPU kind, by hand

def candidate(kind: str, key: str, seconds: float, step: str = "", step_index: int = 0, cpu: str | None = None):
    return Candidate(kind, key, step or f"{kind} step", seconds, f"{kind} {key}", step_index, cpu=cpu)


#: cheapest per kind: readout 10 s, lm_loss 50 s, trace 100 s, noise 1,200 s
POOL = [candidate("readout", "r1", 10, step_index=0), candidate("readout", "r2", 20, step_index=1),
        candidate("readout", "r3", 40, step_index=2), candidate("noise", "n1", 1200, step_index=3),
        candidate("trace", "t1", 100, step_index=4), candidate("trace", "t2", 300, step_index=4),
        candidate("trace", "t3", 900, step_index=5), candidate("lm_loss", "l1", 50, step_index=4),
        candidate("lm_loss", "l2", 60, step_index=6)]


@pytest.mark.parametrize("minutes", [0.2, 0.5, 1, 2, 3, 5, 10, 30, 60])
def test_pick_stays_within_its_budget_and_never_draws_a_result_twice(minutes):
    for seed in range(40):
        chosen = pick(POOL + POOL[:4], minutes, seed)  # a pool listing results twice still draws each once
        assert sum(c.seconds for c in chosen) <= minutes * 60
        assert len({(c.kind, c.key) for c in chosen}) == len(chosen)
        assert [c.step_index for c in chosen] == sorted(c.step_index for c in chosen)  # plan order


@pytest.mark.parametrize("minutes", [0.5, 1, 2, 5, 10])
def test_pick_counts_the_chapters_that_decide_the_claims_again_once_each(minutes):
    """With chapter costs, a result also costs the chapters that record the verdicts it feeds, each counted once over
    the sample: the whole run (recompute + decide again) stays within the budget."""
    chapter_seconds = {"chapters/a.qmd": 30.0, "chapters/b.qmd": 200.0}
    pool = [dataclasses.replace(c, chapters=frozenset({"chapters/a.qmd"} if c.kind != "trace" else
                                                      {"chapters/a.qmd", "chapters/b.qmd"})) for c in POOL]
    for seed in range(40):
        chosen = pick(pool, minutes, seed, chapter_seconds)
        chapters = set().union(*(c.chapters for c in chosen))
        whole = sum(c.seconds for c in chosen) + sum(chapter_seconds[chapter] for chapter in chapters)
        assert whole <= minutes * 60 and len({(c.kind, c.key) for c in chosen}) == len(chosen)
    # half a minute: the cheapest readout (10 s) and its chapter (30 s) do not fit; without chapters it does
    assert pick(pool, 0.5, 0, chapter_seconds) == [] and pick(pool, 0.5, 0) != []
    # two minutes: a trace (100 s) with both chapters (230 s) never fits, readouts and LM losses share chapter a
    assert {c.kind for c in pick(pool, 2, 0, chapter_seconds)} == {"readout", "lm_loss"}


def test_pick_counts_the_start_of_each_plan_step_run_once():
    """Results along a trace recorded their own steps only: the run of their plan step first loads the model and
    passes the intact network over the items (``start_seconds``), counted once per step however many it recomputes."""
    pool = [dataclasses.replace(candidate("lm_loss", f"l{i}", 10, step="loss step", step_index=1), start_seconds=50)
            for i in range(3)] + [dataclasses.replace(candidate("trace", "t1", 10, step="trace step", step_index=2),
                                                      start_seconds=50)]
    for seed in range(20):
        chosen = pick(pool, 80 / 60, seed)  # 80 s: one step's start (50 s) and up to three of its results (30 s)
        assert len({c.step for c in chosen}) == 1 and len(chosen) == 3, chosen
        assert sum(run_seconds(members) for _, members in step_runs(chosen)) == 80
    assert pick(pool, 55 / 60, 0) == []  # a result (10 s) does not fit without its step's start (50 s)
    assert run_line(1, 1, "loss step", pool[:3]).endswith("(est. 1 min 20 s; step 'loss step')")


def test_pick_is_seeded():
    assert pick(POOL, 8, seed=7) == pick(POOL, 8, seed=7)
    assert len({tuple(c.key for c in pick(POOL, 8, seed)) for seed in range(20)}) > 1


def test_pick_covers_every_kind_it_can_afford():
    assert affordable_kinds(POOL, 180) == ["readout", "lm_loss", "trace"]  # 10 + 50 + 100 <= 180 < + 1,200
    assert affordable_kinds(POOL, 159) == ["readout", "lm_loss"]
    for seed in range(40):
        assert {c.kind for c in pick(POOL, 3, seed)} == {"readout", "lm_loss", "trace"}
        assert {c.kind for c in pick(POOL, 2.65, seed)} >= {"readout", "lm_loss"}
        assert {c.kind for c in pick(POOL, 30, seed)} == {"readout", "lm_loss", "trace", "noise"}
    assert sorted(c.key for c in pick(POOL, 10**6, seed=0)) == sorted(c.key for c in POOL)  # all fit: all drawn


def test_pick_draws_nothing_when_not_even_the_cheapest_fits_and_only_it_when_only_it_fits():
    assert pick(POOL, 9 / 60, seed=0) == []
    assert [c.key for c in pick(POOL, 10 / 60, seed=0)] == ["r1"]


def test_pick_draws_cheap_results_more_often():
    readouts = POOL[:3]  # 10, 20, 40 s: drawn first with chances 4/7, 2/7, 1/7; then 10 and 20 fit together, 40 alone
    alone = sum([c.key for c in pick(readouts, 40 / 60, seed)] == ["r3"] for seed in range(700))
    assert 60 < alone < 140  # 100 expected (1/7 of 700)


def test_a_result_s_cost_is_its_recorded_wall_time_else_its_kind_s_documented_rate():
    stored = {("trace", "short")}
    assert estimated_seconds("trace", {"wall_s": 120.5}, stored) == (120.5, "recorded")
    assert estimated_seconds("noise", {}, stored)[0] == FALLBACK_SECONDS["noise"] == 1200.0  # the 1,188 s
    assert estimated_seconds("noise", {"wall_s": None}, stored)[0] == 1200.0
    assert estimated_seconds("no_such_kind", {}, stored)[0] == UNKNOWN_KIND_SECONDS
    assert estimated_seconds("trace", {"wall_s": 100.0, "extends": "short"}, stored)[0] == 100.0  # continues it
    assert estimated_seconds("trace", {"wall_s": 100.0, "extends": "gone"}, stored)[0] == pytest.approx(135.0)


def sidecar_on(cpu: str | None) -> dict:
    return {"key": "k", "provenance": {"environment": None if cpu is None else {"cpu": cpu}}}


def test_whether_a_result_was_computed_on_this_cpu_kind_is_decided_per_result():
    here = "AMD EPYC"
    assert cpu_kind(recorded_cpu(sidecar_on("AMD EPYC")), here) == SAME_KIND == "same kind"
    assert cpu_kind(recorded_cpu(sidecar_on("Intel(R) Xeon(R) Processor")), here) == ANOTHER_KIND == "another kind"
    assert cpu_kind(recorded_cpu(sidecar_on(None)), here) == UNKNOWN_CPU == "unknown"  # migrated: environment null
    assert cpu_kind(recorded_cpu({"key": "k", "provenance": None}), here) == UNKNOWN_CPU
    assert cpu_kind(recorded_cpu({"key": "k", "provenance": {"environment": {"cpu": ""}}}), here) == UNKNOWN_CPU


def recomputed(cpu: str, agrees: bool, reread: bool = False) -> Recomputed:
    comparison = Comparison("readout", "k", "m t", n_values=10, max_abs=0.0 if agrees else 0.5,
                            n_over=0 if agrees else 3)
    return Recomputed(candidate("readout", "k", 60), comparison, 61.0, cpu, reread)


def test_only_results_recomputed_on_their_own_cpu_kind_are_held_to_the_tolerance():
    for cpu, code in ((SAME_KIND, 1), (ANOTHER_KIND, 0), (UNKNOWN_CPU, 0)):
        report = AuditReport([recomputed(SAME_KIND, True), recomputed(cpu, False)], [], 1e-3)
        assert report.beyond_tolerance is (code == 1) and report.exit_code == code
    mixed = AuditReport([recomputed(UNKNOWN_CPU, False), recomputed(ANOTHER_KIND, True),
                         recomputed(SAME_KIND, True, reread=True)], [], 1e-3)
    lines = mixed.lines()
    assert [line.split()[-1] for line in lines[1:4]] == ["unknown", "kind", "kind"]
    assert "another kind" in lines[2] and "same kind" in lines[3] and "re-read" in lines[3] and "61s" in lines[1]
    assert lines[4].startswith("re-read: computed by the same run of its plan step")
    assert ": 1 computed on the same CPU kind (held to the tolerance), 1 on another kind, 1 on an unknown kind" \
        in mixed.summary()
    assert "1 differ beyond |Δ| 0.001 or flip a prediction, 0 of them on the same CPU kind" in mixed.summary()
    assert mixed.exit_code == 0


def test_durations_read_as_people_say_them():
    assert [duration(s) for s in (0.4, 45, 240, 252.4, 3600, 3725)] == \
        ["0 s", "45 s", "4 min 0 s", "4 min 12 s", "1 h 00 min", "1 h 02 min"]


def test_the_line_before_a_run_names_its_results_and_their_estimated_time():
    runs = step_runs([candidate("trace", "b", 60, "phase-targeted silent", 2),
                      candidate("readout", "a", 30, "readout m t", 0),
                      candidate("trace", "c", 180, "phase-targeted silent", 2)])
    assert [(step, [c.key for c in members]) for step, members in runs] == \
        [("readout m t", ["a"]), ("phase-targeted silent", ["b", "c"])]  # plan order, one run per step
    assert run_line(2, 2, *runs[1]) == \
        "[2/2] trace trace b, trace trace c (est. 4 min 0 s; step 'phase-targeted silent')"
    guessed = dataclasses.replace(runs[0][1][0], basis="no wall time recorded: its kind's documented rate")
    assert run_line(1, 2, "readout m t", [guessed]) == \
        "[1/2] readout readout a (est. 30 s; no wall time recorded: its kind's documented rate; step 'readout m t')"


# ------------------------------------------------------------------ the audit's runs, on a store of synthetic results

class StepsOnAStore:
    """A stand-in for ``Experiments``: plan steps that each read (or, computing, save) a few synthetic results."""

    progress = False

    def __init__(self, store: Store, steps: dict, log: list, compute: bool = False) -> None:
        self.store, self.steps, self.log, self.compute = store, steps, log, compute

    def on_store(self, store: Store, *, compute: bool) -> StepsOnAStore:
        return StepsOnAStore(store, self.steps, self.log, compute)

    @property
    def plan(self):
        from layercollapse.study.plan import PlanStep

        return [PlanStep(name, lambda name=name: self.run(name)) for name in self.steps]

    def run(self, name: str) -> None:
        if self.compute:
            self.log.append(f"ran {name}")
        for kind, spec, value in self.steps[name]:
            if self.compute:
                self.store.save(kind, spec, pd.DataFrame({"value": [value]}))
            elif self.store.load(kind, spec) is None:
                raise LookupError(f"{kind} {spec} not stored")


@pytest.fixture
def synthetic(tmp_path):
    """A store of four results in three plan steps; the second step owns two of them."""
    steps = {"readout m t": [("readout", {"model": "m", "task": "t"}, 1.0)],
             "phase-targeted silent": [("trace", {"model": "m", "seed": 1}, 2.0),
                                       ("trace", {"model": "m", "seed": 2}, 3.0)],
             "noise sweep": [("noise", {"model": "m"}, 4.0)]}
    store = Store(tmp_path / "committed")
    for step in steps.values():
        for kind, spec, value in step:
            store.save(kind, spec, pd.DataFrame({"value": [value]}), audit={"wall_s": 10 * value})
    return StepsOnAStore(store, steps, [])


def test_the_audit_says_what_it_does_before_each_run_and_runs_a_shared_step_once(synthetic, tmp_path):
    said = synthetic.log
    report = audit(synthetic, 10, 0, lambda keys, store: {}, {}, workdir=tmp_path, say=said.append)
    assert said[0].startswith("finding the plan step that reads each stored result")
    assert said[1].startswith("4 stored result(s) mapped in ")
    # 10 + (20 + 30) + 40 s recorded, and the two runs along the model start with its readout's 10 s each
    assert "sample: 4 result(s) of 3 kind(s) in 3 plan-step run(s), estimated 2 min 0 s of the 10-minute budget" \
        in said[1]
    runs = said[2:]
    assert [line.split(" (est.")[0] for line in runs[::3]] == \
        ["[1/3] readout m t", runs[3].split(" (est.")[0], "[3/3] noise m"]
    assert runs[3].startswith("[2/3] trace m seed ") and {"trace m seed 1", "trace m seed 2"} <= set(
        runs[3].split(" (est.")[0][6:].split(", "))
    assert "(est. 1 min 0 s; step 'phase-targeted silent')" in runs[3]  # 20 + 30 s and the model's start, 10 s
    assert runs[1::3] == ["ran readout m t", "ran phase-targeted silent", "ran noise sweep"]  # after its line, once
    assert all(line.startswith("      done in ") for line in runs[2::3])
    assert runs[5].endswith("(est. 1 min 0 s)")  # the estimate said after the run is the one said before it
    assert [(item.candidate.kind, item.reread) for item in report.recomputed] == \
        [("readout", False), ("trace", False), ("trace", True), ("noise", False)]
    assert all(item.comparison.agrees() and item.cpu == UNKNOWN_CPU for item in report.recomputed)  # no environment


def test_the_audit_refuses_a_budget_that_fits_no_result(synthetic, tmp_path):
    with pytest.raises(NothingFits) as refused:
        audit(synthetic, 5 / 60, 0, lambda keys, store: {}, {}, workdir=tmp_path)
    assert refused.value.cheapest.kind == "readout" and "is estimated at 10 s" in str(refused.value)
    assert not any(line.startswith("ran ") for line in synthetic.log)  # nothing recomputed
