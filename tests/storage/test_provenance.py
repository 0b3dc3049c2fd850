"""Result keys carry an explicit compute version per kind: stale results are listed, never served, removable."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from layercollapse.storage import provenance
from layercollapse.storage.provenance import (
    COMPUTE_VERSIONS,
    compute_version,
    current_results,
    split_results,
)
from layercollapse.storage.store import Store, list_results

SPEC = {"model": "m", "task": "t"}


def test_a_bump_moves_the_key_of_its_kind_only(monkeypatch):
    from layercollapse.storage.store import spec_key

    before = {kind: spec_key(SPEC, compute_version(kind)) for kind in COMPUTE_VERSIONS}
    monkeypatch.setitem(COMPUTE_VERSIONS, "noise", COMPUTE_VERSIONS["noise"] + 1)
    after = {kind: spec_key(SPEC, compute_version(kind)) for kind in COMPUTE_VERSIONS}
    assert [kind for kind in COMPUTE_VERSIONS if before[kind] != after[kind]] == ["noise"]


def test_an_unknown_kind_is_an_error_that_names_the_table():
    with pytest.raises(provenance.UnknownKind, match="COMPUTE_VERSIONS in lib/storage/provenance.py"):
        compute_version("readuot")


def test_split_results_separates_results_of_other_compute_versions(tmp_path, monkeypatch):
    store = Store(tmp_path)
    store.save("trace", SPEC, pd.DataFrame({"x": [1]}), compute_version=compute_version("trace"))
    store.save("trace", {**SPEC, "seed": 1}, pd.DataFrame({"x": [2]}), compute_version="trace.v0")
    store.save("readout", SPEC, pd.DataFrame({"x": [3]}), compute_version=compute_version("readout"))
    current, stale = split_results(list_results(store))
    assert sorted(current["kind"]) == ["readout", "trace"] and list(stale["kind"]) == ["trace"]
    assert list(stale["spec.seed"]) == [1]
    assert len(current_results(store)) == 2
    monkeypatch.setitem(COMPUTE_VERSIONS, "readout", COMPUTE_VERSIONS["readout"] + 1)
    assert sorted(split_results(list_results(store))[1]["kind"]) == ["readout", "trace"]


def test_remove_stale_deletes_only_stale_results(tmp_path, capsys):
    from layercollapse.cli.reproduce import remove_stale

    store = Store(tmp_path)
    kept = store.save("noise", SPEC, pd.DataFrame({"x": [1]}), compute_version=compute_version("noise"))
    gone = store.save("noise", {**SPEC, "seed": 1}, pd.DataFrame({"x": [2]}), compute_version="noise.v0")
    assert remove_stale(store) == 0
    assert "1 stale result(s) removed" in capsys.readouterr().out
    assert store.load_key("noise", kept) is not None and store.load_key("noise", gone) is None
    assert not [p for p in (tmp_path / "noise").iterdir() if p.name.startswith(gone)]
    assert split_results(list_results(store))[1].empty


def test_the_audit_record_names_the_commit_the_sources_and_the_machine():
    record = provenance.audit_record("trace", device="cpu", dtype="float32", token_budget=512, wall_s=1.23456)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=provenance._LIB, capture_output=True, text=True)
    assert record["git_commit"] == (head.stdout.strip() if head.returncode == 0 else None)
    assert record["compute_version"] == compute_version("trace") and record["wall_s"] == 1.235
    import hashlib

    pruning_source = (provenance._LIB / "pruning" / "engine.py").read_bytes()
    assert record["sources"]["pruning/engine.py"] == hashlib.sha256(pruning_source).hexdigest()[:16]
    assert record["environment"]["torch_threads"] >= 1 and record["environment"]["device"] == "cpu"


@pytest.mark.slow
def test_a_comment_in_every_library_file_leaves_every_committed_result_served(tmp_path):
    """A copy of lib/ with a comment appended to every file serves the whole committed default store."""
    import os
    import shutil
    import sys

    from layercollapse.paths import project_root

    root = project_root()
    copy = tmp_path / "checkout"
    shutil.copytree(root / "lib", copy / "lib", ignore=shutil.ignore_patterns("__pycache__"))
    edited = sorted((copy / "lib").rglob("*.py"))
    for path in edited:
        path.write_text(path.read_text() + "\n# a cosmetic edit: no numbers change\n")
    for shared in ("profiles", "data"):
        (copy / shared).symlink_to(root / shared)
    (tmp_path / "path").mkdir()
    (tmp_path / "path" / "layercollapse").symlink_to(copy / "lib")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "path"), "HF_HUB_OFFLINE": "1"}
    env.pop("LAYERCOLLAPSE_STORE", None)
    where = subprocess.run([sys.executable, "-c", "import layercollapse; print(layercollapse.__file__)"],
                           env=env, capture_output=True, text=True, check=True)
    assert Path(where.stdout.strip()).resolve() == (copy / "lib" / "__init__.py").resolve()
    listed = subprocess.run([sys.executable, "-m", "layercollapse", "reproduce", "--profile", "default", "--list"],
                            env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert len(edited) >= 30 and "every experiment is stored" in listed.stdout, listed.stdout[-2000:]


def test_compute_times_sum_the_recorded_wall_times_per_kind(tmp_path):
    store = Store(tmp_path)
    store.save("trace", SPEC, pd.DataFrame({"x": [1]}), compute_version=compute_version("trace"), audit={"wall_s": 1800})
    store.save("trace", {**SPEC, "seed": 1}, pd.DataFrame({"x": [2]}), compute_version=compute_version("trace"),
               audit={"wall_s": 5400})
    store.save("readout", SPEC, pd.DataFrame({"x": [3]}), compute_version=compute_version("readout"))  # no record
    times = provenance.compute_times(store).set_index("kind")
    assert times.loc["trace", ["results", "recorded", "hours"]].tolist() == [2, 2, 2.0]
    assert times.loc["readout", ["results", "recorded"]].tolist() == [1, 0] and np.isnan(times.loc["readout", "hours"])


def test_the_rendering_environment_names_this_machine():
    import platform

    table = provenance.rendering_environment("cpu", "bfloat16", packages=("numpy", "no-such-package")).set_index("item")
    assert table.loc["python", "value"] == platform.python_version()
    assert table.loc["no-such-package", "value"] == "not installed" and table.loc["weights dtype", "value"] == "bfloat16"
    assert table.loc["CPU", "value"].startswith(provenance.cpu_model())
