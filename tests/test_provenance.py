"""Result keys carry the code that computed them: stale results are listed, never served, removable."""

from __future__ import annotations

import pandas as pd

import layercollapse
from layercollapse import provenance
from layercollapse.provenance import CODE, code_version, current_results, split_results
from layercollapse.store import Store, list_results

SPEC = {"model": "m", "task": "t"}


def test_every_kind_hashes_the_readout_modules_and_its_own():
    assert code_version("trace") != code_version("readout")  # pruning.py is part of a trace's code
    assert code_version("unknown-kind") == code_version("readout")
    for kind, modules in CODE.items():
        for module in modules:
            assert (provenance._LIB / f"{module}.py").is_file(), f"{kind}: no module {module}"


def test_split_results_separates_results_of_other_code_and_versions(tmp_path):
    store = Store(tmp_path)
    store.save("trace", SPEC, pd.DataFrame({"x": [1]}), code_version=code_version("trace"))
    store.save("trace", {**SPEC, "seed": 1}, pd.DataFrame({"x": [2]}), code_version="old-pruning-code")
    store.save("readout", SPEC, pd.DataFrame({"x": [3]}), code_version=code_version("readout"))
    current, stale = split_results(list_results(store))
    assert sorted(current["kind"]) == ["readout", "trace"] and list(stale["kind"]) == ["trace"]
    assert list(stale["spec.seed"]) == [1]
    assert len(current_results(store)) == 2
    assert provenance.is_current("trace", code_version("trace"), layercollapse.__version__)
    assert not provenance.is_current("trace", code_version("trace"), "0.0.0")


def test_remove_stale_deletes_only_stale_results(tmp_path, capsys):
    from layercollapse.reproduce import remove_stale

    store = Store(tmp_path)
    kept = store.save("noise", SPEC, pd.DataFrame({"x": [1]}), code_version=code_version("noise"))
    gone = store.save("noise", {**SPEC, "seed": 1}, pd.DataFrame({"x": [2]}), code_version="edited")
    assert remove_stale(store) == 0
    assert "1 stale result(s) removed" in capsys.readouterr().out
    assert store.load_key("noise", kept) is not None and store.load_key("noise", gone) is None
    assert not [p for p in (tmp_path / "noise").iterdir() if p.name.startswith(gone)]
    assert split_results(list_results(store))[1].empty
