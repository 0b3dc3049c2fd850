"""Tables and notes for people: formatting against hand-written expected output."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from layercollapse.site.tables import (
    MISSING,
    format_number,
    format_p,
    people_table,
    setting_note,
)
from layercollapse.study.profiles import load_profile


@pytest.mark.parametrize("p, shown", [(0.5, "0.5"), (0.031, "0.031"), (0.0034, "0.0034"), (1.2e-5, "1.2e-5"),
                                      (2.7e-19, "2.7e-19"), (0.0, "< 1e-300"), (1.0, "1"), (float("nan"), MISSING),
                                      (None, MISSING)])
def test_p_values_read_as_people_write_them(p, shown):
    assert format_p(p) == shown


def test_numbers_keep_integers_and_round_floats():
    assert [format_number(v) for v in (np.int64(3), 3, 0.12345, np.float32(1.0), float("nan"))] == [
        "3", "3", "0.123", "1.000", MISSING]


def test_people_table_picks_renames_formats_and_never_shows_nan():
    frame = pd.DataFrame({"phase": ["silent", "decisive"], "k": [0, 1], "accuracy": [0.77, np.nan],
                          "accuracy_low": [0.71, np.nan], "accuracy_high": [0.825, np.nan], "p": [2.7e-19, np.nan],
                          "layer": [22.0, np.nan], "model": ["m", "m"]})
    table = people_table(frame, {"phase": "Phase", "k": "k (layers removed)", "accuracy": "Accuracy",
                                 "accuracy_ci": "95% CI", "p": "p", "layer": "Transition layer"},
                         intervals={"accuracy_ci": ("accuracy_low", "accuracy_high")}, p_values=["p"],
                         digits={"layer": 0}, missing={"layer": "no transition"})
    assert table.to_markdown() == (
        "| Phase | k (layers removed) | Accuracy | 95% CI | p | Transition layer |\n"
        "| :--- | ---: | ---: | ---: | ---: | ---: |\n"
        "| silent | 0 | 0.770 | [0.710, 0.825] | 2.7e-19 | 22 |\n"
        "| decisive | 1 | — | — | — | no transition |\n")
    assert "NaN" not in table.to_markdown() and "model" not in table.to_markdown()


def test_an_estimate_and_its_interval_share_one_column():
    frame = pd.DataFrame({"layer": [22.0, 12.0, np.nan], "low": [21.0, np.nan, np.nan], "high": [23.0, 14.0, np.nan]})
    table = people_table(frame, {"layer": "Transition layer [95% CI]"}, digits={"layer": 0},
                         estimates={"layer": ("layer", "low", "high")}, missing={"layer": "none"})
    assert table.to_markdown() == (  # a bound missing: the estimate alone; the estimate missing: the word for it
        "| Transition layer [95% CI] |\n| ---: |\n| 22 [21, 23] |\n| 12 |\n| none |\n")


def test_long_tables_fold_and_missing_columns_are_named():
    frame = pd.DataFrame({"x": range(20)})  # the default folds from 20 rows
    folded = people_table(frame, {"x": "X"}, fold_after=12, summary="All steps").to_markdown()
    assert folded.startswith("<details><summary>All steps (20 rows)</summary>\n\n| X |") and folded.endswith("</details>\n")
    assert not people_table(frame, {"x": "X"}, fold_after=None).to_markdown().startswith("<details>")
    with pytest.raises(KeyError, match=r"no column\(s\) \['y'\] in the table; it has \['x'\]"):
        people_table(frame, {"y": "Y"})


def test_setting_note_is_one_sentence_and_a_list_of_facts():
    note = setting_note(load_profile("default"), {"Main model": "qwen2.5-coder-1.5b (28 layers)"})
    assert note._repr_markdown_() == (
        "Computed with the **default** profile (embedded models on CPU); models, tasks and item counts are on the "
        "[Methods](methods.qmd) page.\n\n- **Main model:** qwen2.5-coder-1.5b (28 layers)\n")


def test_transition_text_says_when_there_is_none():
    from layercollapse.site.tables import transition_text

    assert transition_text(22, (21, 23)) == "22 (95% CI 21–23)"
    assert transition_text(22, None) == "22" and transition_text(None, None) == "no transition"


def test_two_columns_with_one_header_are_refused_instead_of_one_hiding_the_other():
    frame = pd.DataFrame({"fit": ["primary"], "n_traces": [25]})
    with pytest.raises(ValueError, match=r"header\(s\) \['Traces'\]"):
        people_table(frame, {"fit": "Traces", "n_traces": "Traces"})
    assert "primary" in str(people_table(frame, {"fit": "Fit", "n_traces": "Traces"})._repr_markdown_())
