"""``reproduce --audit`` on the golden store: a seeded sample that fits its time budget, recomputed in a copy of the
store, compared with the stored results, and every claim that read them decided again."""

from __future__ import annotations

import dataclasses
import hashlib
import shutil

import pytest
from golden import GOLDEN_PROFILE, GOLDEN_STORE, golden_loader
from layercollapse.claims.verdicts import Verdict
from layercollapse.storage.provenance import COMPUTE_VERSIONS
from layercollapse.storage.store import Store
from layercollapse.study import audit as audit_module
from layercollapse.study.audit import audit, candidates, pick
from layercollapse.study.experiments import Experiments


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
    assert sum(candidate.seconds for candidate in chosen) <= 6.0
    assert chosen == pick(pool, minutes=0.1, seed=0) and chosen != pick(pool, minutes=0.1, seed=1)
    everything = pick(pool, minutes=10**6, seed=0)
    assert sorted((c.kind, c.key) for c in everything) == sorted((c.kind, c.key) for c in pool)  # all fit: all drawn
    cheapest = min(pool, key=lambda c: c.seconds)
    assert pick(pool, minutes=cheapest.seconds / 60, seed=3) == [cheapest]  # only the cheapest fits


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

    monkeypatch.setattr(audit_module, "cpu_model", lambda: "the CPU that computed them")  # a machine of that kind
    report = audit(golden_copy, 0.1, 0, same, records, workdir=tmp_path)
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
