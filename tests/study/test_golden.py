"""Compute versions are honest: every result kind recomputes to its committed golden output.

The golden profile (``tests/golden.py``) is computed through ``Experiments.plan`` into a fresh store
and compared, result by result, with the references in ``tests/golden/store``. The keys carry the
compute versions, so:

- same key, different numbers: a numerical change without a version bump (bump, regenerate);
- a fresh key with no reference, where a reference of the same spec exists at another version:
  a version bump without regenerated references (regenerate);
- a reference nobody computes any more: stale references (regenerate).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from golden import GOLDEN_STORE, compute_golden
from layercollapse.storage.provenance import COMPUTE_VERSIONS, compute_version
from layercollapse.storage.store import Result, Store

#: |fresh - reference| <= ATOL + RTOL * |reference| for float values (fp32 tiny models: run to run they
#: agree to the bit; 1 vs 2 threads moves them by < 1e-6, a real change by far more).
ATOL, RTOL = 1e-5, 1e-5
REGENERATE = "regenerate the references with `python tests/golden.py` and commit them"


@pytest.fixture(scope="module")
def fresh(tmp_path_factory) -> Store:
    return compute_golden(Store(tmp_path_factory.mktemp("golden-fresh")))


def results(store: Store, kind: str) -> dict[str, Result]:
    return {sidecar["key"]: store.load_key(kind, sidecar["key"]) for sidecar in store.sidecars(kind)}


def differences(fresh: Result, reference: Result) -> list[str]:
    """What differs between two results of one key: '<name>: <how>' per table column or array."""
    found = []
    if list(fresh.table.columns) != list(reference.table.columns) or len(fresh.table) != len(reference.table):
        return [f"table: columns {list(fresh.table.columns)} x {len(fresh.table)} rows, "
                f"reference {list(reference.table.columns)} x {len(reference.table)} rows"]
    values = {f"table.{c}": (fresh.table[c].to_numpy(), reference.table[c].to_numpy()) for c in fresh.table}
    if fresh.arrays.keys() != reference.arrays.keys():
        return [f"arrays {sorted(fresh.arrays)}, reference {sorted(reference.arrays)}"]
    values.update({f"arrays.{n}": (fresh.arrays[n], reference.arrays[n]) for n in fresh.arrays})
    for name, (new, old) in values.items():
        if new.shape != old.shape:
            found.append(f"{name}: shape {new.shape}, reference {old.shape}")
        elif new.dtype.kind == "f" and old.dtype.kind == "f":
            both_finite = np.isfinite(new) & np.isfinite(old)
            same_pattern = np.array_equal(np.isfinite(new), np.isfinite(old)) and np.array_equal(
                new[~both_finite], old[~both_finite], equal_nan=True)
            gap = np.abs(new[both_finite].astype(np.float64) - old[both_finite])
            bound = ATOL + RTOL * np.abs(old[both_finite].astype(np.float64))
            if not same_pattern or (gap > bound).any():
                found.append(f"{name}: max |Δ| {gap.max(initial=0.0):.3g}"
                             + ("" if same_pattern else ", infinite/NaN entries moved"))
        elif not pd.Series(list(new)).equals(pd.Series(list(old))):
            found.append(f"{name}: values differ")
    return found


@pytest.mark.parametrize("kind", sorted(COMPUTE_VERSIONS))
def test_each_kind_recomputes_to_its_golden_output(kind, fresh):
    version = compute_version(kind)
    new, old = results(fresh, kind), results(Store(GOLDEN_STORE), kind)
    assert new, f"the golden profile computes no '{kind}' result: extend GOLDEN_PROFILE in tests/golden.py"
    for key, result in new.items():
        if key not in old:
            same_spec = [r for r in old.values() if r.spec == result.spec]
            if same_spec:
                pytest.fail(f"COMPUTE_VERSIONS['{kind}'] is now {version}, but its golden reference was computed at "
                            f"{same_spec[0].meta.get('compute_version')}: {REGENERATE}")
            pytest.fail(f"a '{kind}' spec without a golden reference ({result.spec.get('experiment', kind)}, "
                        f"key {key}): the spec changed; {REGENERATE}")
        found = differences(result, old[key])
        assert not found, (
            f"the numbers of '{kind}' changed but its compute version is still {version} ({'; '.join(found)}): "
            f"bump COMPUTE_VERSIONS['{kind}'] in lib/storage/provenance.py, then {REGENERATE}")
    stale = sorted(set(old) - set(new))
    assert not stale, f"golden '{kind}' references that nothing computes any more ({', '.join(stale)}): {REGENERATE}"
