"""Stored results are served as stored: damage is loud and repaired only on request; recomputing reproduces.

Every test works on a copy of the golden store (``tests/golden``): every result kind of a tiny
profile, with its tiny random models, so results can be damaged, repaired and recomputed in seconds.
"""

from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pandas as pd
import pytest
from golden import GOLDEN_PROFILE, GOLDEN_STORE, golden_loader
from layercollapse.storage.provenance import compute_version
from layercollapse.storage.store import (
    ARRAYS_SUFFIX,
    CorruptResultError,
    CorruptResultWarning,
    Store,
    spec_key,
)
from layercollapse.study.experiments import Experiments
from layercollapse.study.plan import missing_experiments, run_plan_steps
from layercollapse.study.verify import compare_results, verify_kind


@pytest.fixture()
def store(tmp_path) -> Store:
    """A writable copy of the golden store."""
    shutil.copytree(GOLDEN_STORE, tmp_path / "store")
    return Store(tmp_path / "store")


def experiments_on(store: Store, **options) -> Experiments:
    return Experiments(GOLDEN_PROFILE, store=store, progress=False, load_model=golden_loader(), **options)


def garble(path) -> bytes:
    """Flip one byte in the middle of ``path``; return the damaged bytes."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    return bytes(data)


def readout_file(store: Store, readout) -> object:
    return store.directory("readout") / (spec_key(readout.spec, compute_version("readout")) + ARRAYS_SUFFIX)


def test_a_damaged_result_is_refused_loudly_and_left_in_place(store):
    experiments = experiments_on(store, compute=True)
    intact = experiments.readout()
    path = readout_file(store, intact)
    damaged = garble(path)
    with pytest.raises(CorruptResultError) as refused:
        experiments.readout()  # even with computing allowed: replacing a stored result is not a side effect
    message = str(refused.value)
    assert str(path) in message and "checksum mismatch" in message and "--repair" in message and "git checkout" in message
    assert path.read_bytes() == damaged
    with pytest.raises(CorruptResultError):
        experiments_on(store, compute=False).readout()


def test_repair_recomputes_a_damaged_result_and_says_so(store):
    intact = experiments_on(store, compute=True).readout()
    garble(readout_file(store, intact))
    with pytest.warns(CorruptResultWarning, match="checksum mismatch"):
        repaired = experiments_on(store, compute=True, repair=True).readout()
    np.testing.assert_allclose(repaired.scores, intact.scores, atol=1e-5, rtol=1e-5)  # fp32 tiny model
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(experiments_on(store, compute=False).readout().scores, repaired.scores)


def test_a_damaged_trace_is_refused_too(store):
    experiments = experiments_on(store, compute=True)
    trace = experiments.trace("reverse")
    garble(store.directory("trace") / (trace.key + ARRAYS_SUFFIX))
    with pytest.raises(CorruptResultError, match=trace.key):
        experiments.trace("reverse")


@pytest.mark.slow
def test_render_check_stops_at_a_damaged_result_and_list_reports_it(store, monkeypatch):
    monkeypatch.setenv("LAYERCOLLAPSE_STORE", str(store.root))
    assert missing_experiments(GOLDEN_PROFILE) == []
    garble(readout_file(store, experiments_on(store, compute=False).readout()))
    with pytest.raises(CorruptResultError, match="checksum mismatch"):
        missing_experiments(GOLDEN_PROFILE)  # what `render` runs first, with or without --compute
    problems = {name: problem for name, problem, _ in run_plan_steps(experiments_on(store, compute=False),
                                                                     check_only=True) if problem is not None}
    assert [type(p) for p in problems.values()] and all(isinstance(p, CorruptResultError) for p in problems.values())
    assert any(name.startswith("readout tiny-llama-letter") for name in problems)


# ------------------------------------------------------------------------ --verify


@pytest.mark.slow
def test_verify_recomputes_a_kind_without_touching_the_store(store):
    def files():  # results, not the readers' lock files
        return {path: path.read_bytes() for path in store.root.rglob("*") if path.is_file() and path.name[0] != "."}

    before = files()
    comparisons = verify_kind(experiments_on(store, compute=False), "readout")
    assert len(comparisons) == 2 and {c.kind for c in comparisons} == {"readout"}
    for c in comparisons:  # fp32 tiny models recompute to float rounding (1 vs 2 threads: < 1e-5)
        assert c.agrees() and c.max_abs < 1e-5 and c.n_flips == 0 and c.n_values > 0 and c.n_predictions > 0
    assert files() == before


def test_verify_reports_the_largest_difference_and_the_flips(store):
    """A stored readout changed by hand: verify finds exactly the change."""
    readout = experiments_on(store, compute=False).readout()
    stored = store.load("readout", readout.spec, compute_version=compute_version("readout"))
    scores = stored.arrays["scores"].copy()  # [layers + 1, items, options]
    last = scores[-1, 0]
    best, other = int(last.argmax()), int(last.argmin())
    scores[-1, 0, other] = last[best] + 0.5  # one prediction flips, by a margin we know
    store.save("readout", readout.spec, stored.table, {**stored.arrays, "scores": scores},
               compute_version=compute_version("readout"), overwrite=True)
    fresh_delta = float(abs(scores[-1, 0, other] - stored.arrays["scores"][-1, 0, other]))

    (comparison,) = [c for c in verify_kind(experiments_on(store, compute=False), "readout",
                                            only="readout tiny-llama-letter") if c.key == stored.key]
    assert not comparison.agrees()
    assert comparison.n_flips == 1 and comparison.n_over == 1
    assert comparison.n_predictions == scores.shape[0] * scores.shape[1]
    assert comparison.max_abs == pytest.approx(fresh_delta, abs=1e-5)
    assert "DIFFERS" in comparison.line() and "1 of" in comparison.line()


def test_verify_of_a_pruning_kind_reads_the_other_kinds_from_the_copy(store):
    comparisons = verify_kind(experiments_on(store, compute=False), "lm_loss", only="trace reverse")
    assert len(comparisons) == 1 and comparisons[0].agrees() and comparisons[0].n_predictions == 0


def test_compare_results_names_a_structural_difference(store):
    readout = experiments_on(store, compute=False).readout()
    stored = store.load("readout", readout.spec, compute_version=compute_version("readout"))
    store.save("readout", readout.spec, stored.table, {**stored.arrays, "gold": stored.arrays["gold"][:-1]},
               compute_version=compute_version("readout"), overwrite=True)
    changed = store.load("readout", readout.spec, compute_version=compute_version("readout"))
    comparison = compare_results(stored, changed)
    assert not comparison.agrees() and "array 'gold'" in comparison.mismatch


def test_equal_infinities_agree_and_nan_against_a_number_does_not():
    from layercollapse.storage.store import Result

    def result(scores):
        return Result("k", "readout", {}, pd.DataFrame(), {"scores": np.array(scores, np.float32)}, {})

    stored = result([[0.0, -np.inf], [-1.0, np.nan]])
    assert compare_results(stored, result([[0.0005, -np.inf], [-1.0, np.nan]])).max_abs == pytest.approx(5e-4)
    assert compare_results(stored, result([[0.0005, -np.inf], [-1.0, np.nan]])).agrees()
    broken = compare_results(stored, result([[0.0, -np.inf], [-1.0, 2.0]]))
    assert broken.max_abs == np.inf and broken.n_over == 1 and not broken.agrees()


# ------------------------------------------------------------------------ verdicts


@pytest.fixture()
def recorded(store, tmp_path, monkeypatch):
    """A verdict decided by a real rule from a result of the (golden) store, recorded for profile 'golden'."""
    from layercollapse.claims import perturbation
    from layercollapse.claims.verdicts import DATA_ENV

    monkeypatch.setenv(DATA_ENV, str(tmp_path / "data"))
    monkeypatch.setenv("LAYERCOLLAPSE_STORE", str(store.root))
    readout = experiments_on(store, compute=False).readout()
    from layercollapse.storage.store import list_results

    verdict = perturbation.verdict_r1(perturbation.run_table(list_results(store)))
    return verdict, verdict.record("golden"), readout


def test_a_recorded_verdict_carries_its_rule_and_evidence_and_loads_back(recorded):
    from layercollapse.claims.verdicts import load_verdicts

    verdict, path, readout = recorded
    saved = json.loads(path.read_text())
    assert saved["rule"] == "layercollapse.claims.perturbation.verdict_r1"
    key = spec_key(readout.spec, compute_version("readout"))
    assert {"kind": "readout", "key": key} in [{k: e[k] for k in ("kind", "key")} for e in saved["evidence"]]
    assert load_verdicts("golden") == {"R1": verdict}


def test_a_verdict_edited_by_hand_is_refused(recorded):
    from layercollapse.claims.verdicts import VerdictError, load_verdicts

    _, path, _ = recorded
    saved = json.loads(path.read_text())
    saved["status"] = "not supported" if saved["status"] == "supported" else "supported"
    path.write_text(json.dumps(saved, indent=2))
    with pytest.raises(VerdictError, match=f"{path}.*changed after it was recorded.*re-render"):
        load_verdicts("golden")


def test_a_truncated_verdict_names_its_file(recorded):
    from layercollapse.claims.verdicts import VerdictError, load_verdicts

    _, path, _ = recorded
    path.write_text(path.read_text()[:40])
    with pytest.raises(VerdictError, match=f"{path} is not valid JSON"):
        load_verdicts("golden")


def test_a_verdict_whose_results_changed_is_refused(recorded, store):
    from layercollapse.claims.verdicts import VerdictError, load_verdicts

    _, _, readout = recorded
    stored = store.load("readout", readout.spec, compute_version=compute_version("readout"))
    store.save("readout", readout.spec, stored.table, {**stored.arrays, "scores": stored.arrays["scores"] + 1},
               compute_version=compute_version("readout"), overwrite=True)
    with pytest.raises(VerdictError, match=f"readout/{stored.key}, which has changed since"):
        load_verdicts("golden")
    store.remove("readout", stored.key)
    with pytest.raises(VerdictError, match="which is no longer stored"):
        load_verdicts("golden")


def test_results_no_plan_step_reads_are_listed_and_removed_on_request(tmp_path, monkeypatch, capsys):
    from layercollapse.cli.main import main
    from layercollapse.storage.provenance import compute_version
    from layercollapse.study.experiments import Experiments, MissingResult
    from layercollapse.study.plan import PlanStep, unused_results

    store = Store(tmp_path)
    version = compute_version("noise")
    read = store.save("noise", {"spec": 1}, pd.DataFrame({"x": [1]}), compute_version=version)
    left_behind = store.save("noise", {"spec": 2}, pd.DataFrame({"x": [2]}), compute_version=version)
    stale = store.save("noise", {"spec": 3}, pd.DataFrame({"x": [3]}), compute_version="noise.v0")

    def plan(self):
        return [PlanStep("reads spec 1", lambda: self.store.load("noise", {"spec": 1}, compute_version=version))]

    monkeypatch.setattr(Experiments, "plan", property(plan))
    assert unused_results(Experiments("test", store=store, compute=False))["key"].tolist() == [left_behind]
    monkeypatch.setenv("LAYERCOLLAPSE_STORE", str(tmp_path))
    assert main(["reproduce", "--profile", "test", "--list"]) == 0
    assert "1 stored result(s) that no experiment of this profile reads" in capsys.readouterr().out
    assert main(["reproduce", "--profile", "test", "--remove-unused"]) == 0
    assert store.load_key("noise", left_behind) is None and store.load_key("noise", read) is not None
    assert store.sidecars("noise") and stale in {sidecar["key"] for sidecar in store.sidecars("noise")}  # not its job

    def missing(self):
        def fail():
            raise MissingResult("noise", {"model": "m"}, "test")
        return [PlanStep("missing", fail)]

    monkeypatch.setattr(Experiments, "plan", property(missing))
    assert main(["reproduce", "--profile", "test", "--remove-unused"]) == 1
    assert "nothing was removed" in capsys.readouterr().out and store.load_key("noise", read) is not None
