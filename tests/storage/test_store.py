"""Tests of the results store: keys, round trips, atomicity, corruption, checkpoints."""

from __future__ import annotations

import json
import os
import re
import runpy
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import layercollapse
import numpy as np
import pandas as pd
import pytest
from layercollapse.storage import store as store_mod
from layercollapse.storage.store import (
    Checkpoint,
    CorruptResultWarning,
    ResultExistsError,
    Store,
    cached,
    canonical_json,
    default_root,
    list_results,
    normalize_spec,
    spec_key,
)

SPEC = {"model": "toy", "task": "arc_easy", "format": "letter", "split": "test",
        "item_ids": [3, 1, 2], "schedule": {"name": "iterative", "criterion": "dm"},
        "seed": 0}


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "store")


def sample_arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "scores": rng.normal(size=(5, 7, 4)).astype(np.float32),  # [n_layers+1, n_items, n_options]
        "half": rng.normal(size=(2, 3)).astype(np.float16),
        "codes": rng.integers(-100, 100, size=(4,), dtype=np.int8),
        "big": np.array([2**64 - 1, 0], dtype=np.uint64),
        "mask": rng.random((3, 2, 2)) > 0.5,
        "scalar": np.array(1.5),
        "empty": np.zeros((0, 3), dtype=np.float64),
        "fortran": np.asfortranarray(rng.normal(size=(3, 4))),
    }


def sample_table() -> pd.DataFrame:
    return pd.DataFrame({"layer": [0, 1, 2], "dm": [0.1, -0.2, np.nan],
                         "option": ["A", "B", "C"], "correct": [True, False, True]})


def assert_arrays_identical(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].dtype == b[name].dtype, name
        assert a[name].shape == b[name].shape, name
        assert a[name].tobytes(order="C") == b[name].tobytes(order="C"), name


# ------------------------------------------------------------------------ keys


def test_key_is_16_hex_and_ignores_dict_order():
    key = spec_key(SPEC)
    assert re.fullmatch(r"[0-9a-f]{16}", key)
    assert spec_key(dict(reversed(list(SPEC.items())))) == key
    assert spec_key({**SPEC, "seed": 1}) != key
    assert spec_key({**SPEC, "item_ids": [1, 2, 3]}) != key  # item order matters


def test_numpy_and_tuple_values_normalise_to_plain_json():
    numpy_spec = {**SPEC, "item_ids": np.array([3, 1, 2]), "seed": np.int64(0),
                  "schedule": {"name": np.str_("iterative"), "criterion": "dm"}}
    tuple_spec = {**SPEC, "item_ids": (np.int32(3), 1, 2)}
    assert spec_key(numpy_spec) == spec_key(tuple_spec) == spec_key(SPEC)
    assert normalize_spec({"x": np.float32(0.5), "y": np.bool_(True), "z": 2.0, "w": -0.0}) == \
        {"x": 0.5, "y": True, "z": 2, "w": 0}
    assert spec_key({"sigma2": 1}) == spec_key({"sigma2": np.float64(1.0)})


def test_canonical_json_has_sorted_keys_and_no_whitespace():
    assert canonical_json({"b": [1, 2.5], "a": {"d": None, "c": "é"}}) == \
        '{"a":{"c":"é","d":null},"b":[1,2.5]}'


@pytest.mark.parametrize("bad, error", [
    ({"x": float("nan")}, ValueError),
    ({"x": {1, 2}}, TypeError),
    ({1: "x"}, TypeError),
    ({"x": object()}, TypeError),
])
def test_unhashable_specs_raise(bad, error):
    with pytest.raises(error):
        spec_key(bad)


def test_the_compute_version_changes_the_key_and_the_library_version_does_not(monkeypatch):
    key = spec_key(SPEC, compute_version="scores.v1")
    assert spec_key(SPEC, compute_version="scores.v2") != key
    monkeypatch.setattr(layercollapse, "__version__", layercollapse.__version__ + ".dev1")
    assert spec_key(SPEC, compute_version="scores.v1") == key


def test_default_root(monkeypatch, tmp_path):
    monkeypatch.setenv("LAYERCOLLAPSE_STORE", str(tmp_path / "elsewhere"))
    assert default_root() == tmp_path / "elsewhere"
    assert Store().root == tmp_path / "elsewhere"
    monkeypatch.delenv("LAYERCOLLAPSE_STORE")
    repo = Path(__file__).resolve().parents[2]  # the checkout
    assert default_root("default") == repo / "data" / "store"
    assert default_root("paper") == repo / "data" / "store-paper"
    monkeypatch.setenv("LAYERCOLLAPSE_CACHE", str(tmp_path / "cache"))
    assert default_root() == Store().root == tmp_path / "cache" / "store"  # ad-hoc runs stay out of data/
    monkeypatch.delenv("LAYERCOLLAPSE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_root() == tmp_path / "xdg" / "layercollapse" / "store"


# ------------------------------------------------------------------- round trip


def test_round_trip_is_exact_and_files_are_where_documented(store):
    arrays = sample_arrays()
    key = store.save("scores", SPEC, sample_table(), arrays, compute_version="c1", audit={"git_commit": "abc"})
    directory = store.root / "scores"
    assert (directory / f"{key}.parquet").is_file()
    assert (directory / f"{key}.arrays.parquet").is_file()
    sidecar = json.loads((directory / f"{key}.json").read_text())
    assert sidecar["arrays"]["scores"] == {"dtype": "float32", "shape": [5, 7, 4]}
    assert sidecar["spec"] == normalize_spec(SPEC)
    assert sidecar["compute_version"] == "c1"
    assert sidecar["provenance"] == {"git_commit": "abc"}  # the audit record, not part of the key

    result = store.load("scores", SPEC, compute_version="c1")
    assert result is not None and result.key == key
    pd.testing.assert_frame_equal(result.table, sample_table(), check_exact=True)
    assert_arrays_identical(result.arrays, arrays)
    assert all(a.flags.writeable for a in result.arrays.values())
    assert store.load("scores", SPEC) is None  # other compute version: not served
    # parquet is readable without this library
    assert pd.read_parquet(directory / f"{key}.parquet")["option"].tolist() == ["A", "B", "C"]


def test_arrays_only_and_table_only(store):
    store.save("layerwise", SPEC, arrays={"dm": np.arange(6, dtype=np.float32)})
    result = store.load("layerwise", SPEC)
    assert result.table.shape == (0, 0)
    assert result.arrays["dm"].dtype == np.float32
    store.save("trace", SPEC, sample_table())
    assert store.load("trace", SPEC).arrays == {}


def test_rejects_unsupported_arrays(store):
    with pytest.raises(TypeError):
        store.save("scores", SPEC, arrays={"z": np.array([1 + 2j])})
    with pytest.raises(ValueError):
        store.save("../escape", SPEC, sample_table())


# --------------------------------------------------------- overwrite semantics


def test_identical_save_is_noop_different_raises_overwrite_replaces(store):
    key = store.save("scores", SPEC, sample_table(), sample_arrays())
    sidecar = store.root / "scores" / f"{key}.json"
    before = (sidecar.read_bytes(), sidecar.stat().st_mtime_ns)
    assert store.save("scores", SPEC, sample_table(), sample_arrays()) == key
    assert (sidecar.read_bytes(), sidecar.stat().st_mtime_ns) == before

    changed = sample_arrays()
    changed["scores"][0, 0, 0] += 1e-6
    with pytest.raises(ResultExistsError):
        store.save("scores", SPEC, sample_table(), changed)
    with pytest.raises(ResultExistsError):  # same values, other dtype
        store.save("scores", SPEC, sample_table().astype({"layer": "int32"}), sample_arrays())

    store.save("scores", SPEC, sample_table(), overwrite=True)
    result = store.load("scores", SPEC)
    assert result.arrays == {}
    assert not (store.root / "scores" / f"{key}.arrays.parquet").exists()


# ------------------------------------------------------------------ corruption


def corrupt(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif how == "flip":
        path.write_bytes(data[:100] + bytes([data[100] ^ 0xFF]) + data[101:])
    else:
        path.unlink()


@pytest.mark.parametrize("suffix", [".parquet", ".arrays.parquet"])
@pytest.mark.parametrize("how", ["truncate", "flip", "delete"])
def test_corrupt_payload_warns_and_is_recomputed(store, suffix, how):
    calls = []

    def compute():
        calls.append(1)
        return sample_table(), sample_arrays()

    first = cached(store, "scores", SPEC, compute)
    path = store.root / "scores" / f"{first.key}{suffix}"
    corrupt(path, how)
    with pytest.warns(CorruptResultWarning, match=re.escape(str(path))):
        assert store.load("scores", SPEC) is None
    with pytest.warns(CorruptResultWarning):
        second = cached(store, "scores", SPEC, compute)
    assert len(calls) == 2
    assert_arrays_identical(second.arrays, first.arrays)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert store.load("scores", SPEC) is not None


def test_corrupt_sidecar_warns(store):
    key = store.save("scores", SPEC, sample_table())
    sidecar = store.root / "scores" / f"{key}.json"
    sidecar.write_text(sidecar.read_text()[:40])
    with pytest.warns(CorruptResultWarning, match=re.escape(str(sidecar))):
        assert not store.exists("scores", SPEC)


# ---------------------------------------------------------------------- cached


def test_cached_computes_once_and_returns_the_stored_result(store):
    calls = []

    def compute():
        calls.append(1)
        return {"scores": np.ones((2, 3), np.float32)}

    a = cached(store, "scores", SPEC, compute)
    b = cached(store, "scores", SPEC, compute)
    assert len(calls) == 1
    assert_arrays_identical(a.arrays, b.arrays)
    pd.testing.assert_frame_equal(a.table, b.table)
    with pytest.raises(TypeError):
        cached(store, "scores", {"other": 1}, lambda: [1, 2])


# ---------------------------------------------------------------- list_results


def test_list_results_flattens_specs(store):
    assert list_results(store).empty
    store.save("scores", SPEC, sample_table())
    store.save("scores", {**SPEC, "seed": 1}, sample_table(), compute_version="v2")
    store.save("trace", {"model": "toy"}, arrays={"x": np.zeros(2)})
    table = list_results(store)
    assert len(table) == 3
    assert {"kind", "key", "compute_version", "spec.model", "spec.schedule.name"} <= set(table)
    scores = list_results(store, "scores")
    assert sorted(scores["spec.seed"]) == [0, 1]
    assert (scores["spec.schedule.criterion"] == "dm").all()
    assert list_results(store, "trace")["arrays"].tolist() == [["x"]]


# ------------------------------------------------------------------ checkpoint


def test_checkpoint_finalize_stacks_steps_and_removes_partial(store):
    ckpt = Checkpoint(store, "trace", SPEC)
    assert ckpt.completed_steps() == []
    for step in range(3):
        ckpt.append_step(step, {"removed_layer": 5 - step, "dm": 0.5 * step},
                         {"scores": np.full((2, 4), step, np.float32)})
    done = ckpt.completed_steps()
    assert [s.index for s in done] == [0, 1, 2]
    assert done[1].row == {"removed_layer": 4, "dm": 0.5}
    with pytest.raises(ValueError):
        ckpt.append_step(3, {"step": 3})
    result = ckpt.finalize()
    assert result.table.columns.tolist() == ["step", "removed_layer", "dm"]
    assert result.table["step"].tolist() == [0, 1, 2]
    assert result.arrays["scores"].shape == (3, 2, 4)  # [n_steps, n_items, n_options]
    assert result.arrays["scores"].dtype == np.float32
    assert not ckpt.directory.exists()
    assert store.load("trace", SPEC) is not None


def test_checkpoint_stops_at_corrupt_step(store):
    ckpt = Checkpoint(store, "trace", SPEC)
    for step in range(4):
        ckpt.append_step(step, {"x": step})
    damaged = ckpt.directory / "step_000002.parquet"
    corrupt(damaged, "truncate")
    with pytest.warns(CorruptResultWarning, match=re.escape(str(damaged))):
        assert [s.index for s in ckpt.completed_steps()] == [0, 1]


RESUMABLE_RUN = '''
import sys, time
import numpy as np
from layercollapse.storage.store import Checkpoint, Store

root, log_path, n_steps, delay = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
spec = {"model": "toy", "n_steps": n_steps, "seed": np.int64(7)}
ckpt = Checkpoint(Store(root), "trace", spec)
done = ckpt.completed_steps()
total = done[-1].row["total"] if done else 0.0  # each step depends on the previous one
with open(log_path, "a") as log:
    print("start", len(done), file=log, flush=True)
    for step in range(len(done), n_steps):
        time.sleep(delay)
        rng = np.random.default_rng(step)
        value = float(rng.normal())
        total += value
        ckpt.append_step(step, {"value": value, "total": total},
                         {"scores": rng.normal(size=(3, 4)).astype(np.float32)})
        print("done", step, file=log, flush=True)
    ckpt.finalize()
    print("finalized", file=log, flush=True)
'''


def read_log(path: Path) -> tuple[list[int], list[int]]:
    """(start counts, completed steps) logged by RESUMABLE_RUN."""
    lines = [line.split() for line in path.read_text().splitlines()]
    return ([int(x[1]) for x in lines if x[0] == "start"],
            [int(x[1]) for x in lines if x[0] == "done"])


def test_sigkill_mid_run_resumes_from_last_finished_step(tmp_path, monkeypatch):
    script = tmp_path / "run.py"
    script.write_text(RESUMABLE_RUN)
    n_steps, killed_log, resumed_log = 12, tmp_path / "killed.log", tmp_path / "resumed.log"
    args = [sys.executable, str(script), str(tmp_path / "store")]

    proc = subprocess.Popen([*args, str(killed_log), str(n_steps), "0.25"])
    deadline = time.monotonic() + 120
    while not (killed_log.exists() and len(read_log(killed_log)[1]) >= 3):
        assert proc.poll() is None and time.monotonic() < deadline, "run did not progress"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    _, killed_done = read_log(killed_log)
    assert killed_done == list(range(len(killed_done))) and len(killed_done) < n_steps

    subprocess.run([*args, str(resumed_log), str(n_steps), "0"], check=True, timeout=120)
    (start,), resumed_done = read_log(resumed_log)
    # the kill may land after a step was written but before it was logged
    assert len(killed_done) <= start <= len(killed_done) + 1
    assert resumed_done == list(range(start, n_steps))  # finished steps not recomputed

    reference_log = tmp_path / "reference.log"
    monkeypatch.setattr(sys, "argv", ["run.py", str(tmp_path / "reference"),
                                      str(reference_log), str(n_steps), "0"])
    runpy.run_path(str(script), run_name="__main__")
    assert read_log(reference_log) == ([0], list(range(n_steps)))

    spec = {"model": "toy", "n_steps": n_steps, "seed": 7}
    resumed = Store(tmp_path / "store").load("trace", spec)
    reference = Store(tmp_path / "reference").load("trace", spec)
    pd.testing.assert_frame_equal(resumed.table, reference.table, check_exact=True)
    assert_arrays_identical(resumed.arrays, reference.arrays)
    assert not list((tmp_path / "store" / "trace").glob("*.partial"))


# ----------------------------------------------------------------- concurrency


CONCURRENT_WRITER = '''
import sys
import numpy as np, pandas as pd
from layercollapse.storage.store import Store

store, who = Store(sys.argv[1]), sys.argv[2]
for i in range(15):
    store.save("c", {"shared": i}, pd.DataFrame({"x": np.arange(50) * i}),
               {"a": np.full((8, 8), i, np.float32)})
    store.save("c", {"own": who, "i": i}, pd.DataFrame({"x": [i]}))
'''


def test_two_processes_write_same_and_different_keys(tmp_path):
    script = tmp_path / "writer.py"
    script.write_text(CONCURRENT_WRITER)
    root = tmp_path / "store"
    procs = [subprocess.Popen([sys.executable, str(script), str(root), who],
                              stderr=subprocess.PIPE, text=True) for who in ("a", "b")]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    store = Store(root)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for i in range(15):
            assert store.load("c", {"shared": i}).arrays["a"][0, 0] == i
            assert all(store.exists("c", {"own": who, "i": i}) for who in ("a", "b"))
    assert len(list_results(store, "c")) == 45
    assert not list((root / "c").glob(".*.tmp"))


def test_written_files_follow_the_umask_not_mkstemp_0600(tmp_path):
    """A store shared on a cluster must be readable by the group: files get 0666 & ~umask."""
    previous = os.umask(0o022)
    try:
        store_mod.write_atomic(tmp_path / "result.json", b"{}")
        mode = os.stat(tmp_path / "result.json").st_mode & 0o777
    finally:
        os.umask(previous)
    assert mode == 0o644
    assert not list(tmp_path.glob(".*.tmp")), "the temp file must be renamed away"


def test_a_sidecar_is_read_without_reading_the_result(store):
    """``Store.sidecar`` gives the spec and array shapes of a stored result without loading it: ``results_read`` (a
    verdict's evidence, the audit's map of which step reads what) does not list it."""
    scores = np.zeros((5, 3, 4), dtype=np.float32)
    store.save("readout", SPEC, pd.DataFrame({"x": [1]}), {"scores": scores}, compute_version="readout.v9")
    assert store.sidecar("readout", SPEC, compute_version="readout.v8") is None  # another compute version
    assert store.sidecar("readout", {**SPEC, "seed": 1}, compute_version="readout.v9") is None
    sidecar = store.sidecar("readout", SPEC, compute_version="readout.v9")
    assert sidecar["arrays"]["scores"]["shape"] == [5, 3, 4]
    assert store_mod.results_read(store) == []
    store.load("readout", SPEC, compute_version="readout.v9")
    assert [read["kind"] for read in store_mod.results_read(store)] == ["readout"]
    path = store.directory("readout") / (spec_key(SPEC, "readout.v9") + ".json")
    path.write_text("{not json")  # damaged: said, as sidecars() says it, not taken for a missing result
    with pytest.raises(store_mod.CorruptResultError, match="unreadable sidecar"):
        store.sidecar("readout", SPEC, compute_version="readout.v9", damaged="raise")
