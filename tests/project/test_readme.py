"""The README's code runs as written: every ``python`` block executes, on the embedded SmolLM2.

Model names and item counts are shrunk so the blocks run in seconds; nothing else is changed.
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"

#: What the test changes in a block so that it runs on a small model and few items.
SHRINK = {'load_model("qwen2.5-coder-1.5b")': 'load_model("smollm2-135m")', "), 100, seed=0)": "), 6, seed=0)"}


def python_blocks(text: str) -> list[str]:
    """The bodies of the ```python fenced blocks of a markdown text, in order."""
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def test_python_blocks_are_found():
    blocks = python_blocks("intro\n```python\nx = 1\n```\ntext\n```bash\nls\n```\n```python\ny = 2\n```\n")
    assert blocks == ["x = 1\n", "y = 2\n"]


def library_names(blocks: list[str]) -> set[str]:
    """Every ``layercollapse`` name that python code uses, as ``"module:name"``: imported from the package or one of its
    modules (``from layercollapse import score``), or read from the package (``layercollapse.metrics``)."""
    names = set()
    for block in blocks:
        for node in ast.walk(ast.parse(block)):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "layercollapse":
                names |= {f"{node.module}:{alias.name}" for alias in node.names}
            elif isinstance(node, ast.Import):
                names |= {f"{alias.name}:" for alias in node.names if alias.name.split(".")[0] == "layercollapse"}
            elif isinstance(node, ast.Attribute) and getattr(node.value, "id", None) == "layercollapse":
                names.add(f"layercollapse:{node.attr}")
    return names


def resolves(name: str) -> bool:
    """True when ``"module:name"`` (or ``"module:"``) imports; False for a name or module the library does not have
    (a missing third-party package raises)."""
    module, _, attribute = name.partition(":")
    try:
        return not attribute or hasattr(importlib.import_module(module), attribute)
    except ModuleNotFoundError as error:
        if not (error.name or "").startswith("layercollapse"):
            raise
        return False


def test_library_names_are_found_and_a_stale_one_does_not_resolve():
    code = ("from layercollapse import Store, score as s\nimport layercollapse.data.tasks\n"
            "from layercollapse.measures.stats import gone\nlayercollapse.metrics.accuracy(x, y)\n")
    names = library_names([code])
    assert names == {"layercollapse:Store", "layercollapse:score", "layercollapse.data.tasks:",
                     "layercollapse.measures.stats:gone", "layercollapse:metrics"}
    assert not resolves("layercollapse.measures.stats:gone") and not resolves("layercollapse:gone")
    assert not resolves("layercollapse.results.store:Store")


def test_readme_python_blocks_use_only_names_the_library_has():
    names = library_names(python_blocks(README.read_text()))
    assert "layercollapse:load_model" in names  # the library example is parsed
    stale = sorted(name for name in names if not resolves(name))
    assert not stale, f"README.md's python code uses {stale}, which the library does not have (lib/__init__.py PUBLIC)"


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(python_blocks(README.read_text()))))
def test_readme_python_block_runs(index):
    block = python_blocks(README.read_text())[index]
    for written, small in SHRINK.items():
        block = block.replace(written, small)
    namespace: dict = {}
    exec(compile(block, f"README.md python block {index + 1}", "exec"), namespace)
    if "pruned" in namespace:  # the library example: a score inside drop_layers scores the pruned network
        import numpy as np
        from layercollapse.readout.scoring import score

        model, tokenizer, items = namespace["model"], namespace["tokenizer"], namespace["items"]
        kept = [i for i in range(30) if i not in (3, 7)]
        np.testing.assert_array_equal(namespace["pruned"], score(model, tokenizer, items, "letter", layers=kept,
                                                                 progress=False))
        assert namespace["scores"].shape[0] == 6 and namespace["readout"].shape[:2] == (31, 6)


def profile_table_items(text: str) -> dict[str, str]:
    """The ``items`` column of the README's profile table (its section "## Profiles"), by profile name."""
    section = text[text.index("\n## Profiles"):]
    section = section[: section.find("\n## ", 1)]
    rows = re.findall(r"^\| `(?P<name>[a-z]+)` \| [^|]* \| (?P<items>[^|]*) \|", section, flags=re.M)
    return {name: items.strip() for name, items in rows}


def test_readme_profile_table_states_the_profiles_item_counts():
    from layercollapse.study.profiles import load_profile

    written = profile_table_items(README.read_text())
    assert set(written) == {"default", "paper", "test"}, written
    default, test = load_profile("default"), load_profile("test")
    assert written["default"] == (f"{default.n_items} per task ({default.n_pruning_items} for pruning traces; "
                                  f"{default.setting_study.n_phase_items} for the dose-response of the settings besides "
                                  "the main one)"), ("README's profile table disagrees with profiles/default.yml: write "
                                                     "its n_items, n_pruning_items and setting_study's n_phase_items")
    assert written["test"] == str(test.n_items), "README's profile table disagrees with profiles/test.yml n_items"
    assert load_profile("paper").n_items is None and written["paper"] == "full splits"


def test_readme_lists_every_environment_variable_the_library_reads():
    from layercollapse import settings

    rows = re.findall(r"^\| `([A-Z_]+)` \| (.+?) \| (.+?) \|$", README.read_text(), flags=re.M)
    assert [name for name, _, _ in rows] == [variable.name for variable in settings.VARIABLES]
    assert all(meaning == variable.meaning and default == variable.default
               for (_, meaning, default), variable in zip(rows, settings.VARIABLES))


def test_readme_numerics_table_is_the_readout_precision_benchmark_s():
    import json

    measured = json.loads((README.parent / "benchmarks" / "results" / "readout_precision.json").read_text())["formats"]
    section = README.read_text().split("## Numerics")[1]
    rows = {name: cells for name, *cells in (
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in section.splitlines() if line.startswith("| fp32") or line.startswith("| bf16"))}

    def shown(value: float) -> str:
        return f"{value:.2g}"

    for row, key in (("fp32 model", "fp32 model"), ("bf16, readout in bf16 (`readout: model`)", "bf16, model readout"),
                     ("bf16, float32 readout (library default)", "bf16, float32 readout")):
        letter, cloze = measured["letter"][key], measured["cloze"][key]
        assert rows[row] == [f"{shown(letter['max_abs_delta'])} / {shown(letter['mean_abs_delta'])}",
                             shown(letter["max_delta_mean_dm"]),
                             f"{shown(cloze['max_abs_delta'])} / {shown(cloze['mean_abs_delta'])}",
                             shown(cloze["max_delta_mean_dm"])], row


def test_readme_cold_run_figures_are_the_cold_total_file_s():
    """The README's cold-run hours are those ``benchmarks/cold_total.py`` wrote, and the file adds up."""
    import json

    measured = json.loads((README.parent / "benchmarks" / "results" / "cold_total_default.json").read_text())
    assert round(sum(part["hours"] for part in measured["parts"]), 1) == measured["total_hours"]
    dose = measured["dose_response"]
    settings = measured["parts"][-1]
    assert settings["part"].startswith("settings of the verdict matrix") and measured["new_hours"] == settings["hours"]
    assert dose["hours"] == pytest.approx(sum(dose["passes"].values()) * dose["seconds_per_layer_pass"] / 3600, abs=0.01)
    text = " ".join(README.read_text().split())
    assert f"about **{measured['total_hours']} hours** on 2 CPU cores" in text
    assert f"The dose-response of the main model added **{dose['hours']} h**" in text
    assert f"The settings of the verdict matrix added **{measured['new_hours']} h**" in text
    assert all(f"{rate} ms" in text or f"{rate} and" in text for rate in measured["main_model_ms_per_pass_item"].values())
    assert f"{sum(dose['passes'].values()):,} decoder-layer passes" in text
    assert f"at {dose['seconds_per_layer_pass']} s per pass, the rate of the {dose['timed_alone']['traces']} " in text
    assert f"sum to {dose['recorded_wall_hours']} h" in text


def test_readme_findings_are_the_recorded_verdicts():
    """The README's summary of the default build is the matrix's (``site.ledger.findings_text`` over the recorded
    verdicts: per claim, its status over the settings and the main setting's number), on the settings the study ran
    on (``benchmarks/results/setting_costs_default.json``)."""
    import json

    from layercollapse.site.ledger import findings_text, ledger_rows

    text = " ".join(README.read_text().split("## What the default build finds")[1].split("## ")[0].split())
    assert " ".join(findings_text(ledger_rows("default")).split()) in text
    costs = json.loads((README.parent / "benchmarks" / "results" / "setting_costs_default.json").read_text())
    assert f"the study runs on {len(costs['studied'])} settings" in text
