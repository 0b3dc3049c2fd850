"""The verdict matrix (site.matrix) and the ledger built from verdict files decided per setting: a synthetic profile's
verdicts on three settings of two architectures, one claim on which they disagree (mixed)."""

from __future__ import annotations

import re

import pytest
from layercollapse.claims import verdicts
from layercollapse.site import ledger, matrix
from layercollapse.study.profiles import Setting, load_profile

MAIN = load_profile("test").main_setting  # smollm2-135m@arc_easy@letter@0shot (Llama)
CLOZE = Setting("smollm2-135m", "arc_easy", "cloze", 3)
QWEN = Setting("qwen2.5-coder-1.5b", "arc_challenge", "letter", 0)  # another architecture (Qwen2)


def verdict(claim: str, status: str, value: float, setting: Setting) -> verdicts.Verdict:
    return verdicts.Verdict(claim, status, "share", value, f"{claim} on {setting.key}.", ci=(value - 0.1, value + 0.1),
                            n=10).on(setting)


@pytest.fixture
def recorded(tmp_path, monkeypatch):
    """C4 supported on all three settings; C5b supported on two and not supported on the Qwen one; R1 decided once."""
    monkeypatch.setenv(verdicts.DATA_ENV, str(tmp_path))
    c4 = [verdict("C4", "supported", 0.01, setting) for setting in (MAIN, CLOZE, QWEN)]
    c5b = [verdict("C5b", "supported", 0.1, MAIN), verdict("C5b", "supported", 0.2, CLOZE),
           verdict("C5b", "not supported", 0.9, QWEN)]
    for found in (c4, c5b):
        verdicts.record_settings(found, "test")
    verdicts.Verdict("R1", "supported", "smallest evaluation set (items)", 8, "Once.").record("test")
    return tmp_path / "verdicts" / "test"


def test_a_verdict_decided_on_a_setting_is_keyed_and_shown_by_it():
    found = verdict("C5b", "supported", 0.1, CLOZE)
    assert found.key == "C5b@smollm2-135m@arc_easy@cloze@3shot" and found.setting_key == CLOZE.key
    assert Setting.from_key(found.setting_key) == CLOZE
    assert found.setting == "smollm2-135m, arc_easy, cloze, 3-shot"
    assert 'title="Verdict on C5b (smollm2-135m, arc_easy, cloze, 3-shot): supported"' in found._repr_markdown_()


def test_the_matrix_shows_every_setting_and_a_disagreement_as_mixed(recorded):
    rows = matrix.matrix_rows(matrix.studied_verdicts("test"))
    assert [row.claim for row in rows] == ["C4", "C5b"]  # R1 is decided once: the ledger shows it, not the matrix
    c4, c5b = rows
    assert c4.status == "supported" and c4.summary() == "supported in 3 of 3 settings"
    assert c5b.status == matrix.MIXED and c5b.summary() == "supported in 2 of 3 settings (not supported 1)"
    assert matrix.setting_order(list(c5b.cells), MAIN.key) == [MAIN.key, CLOZE.key, QWEN.key]
    page = matrix.matrix_html(rows, main=MAIN.key)
    # two architecture groups over the setting columns, the main setting's group first
    assert re.findall(r'<th colspan="(\d)" class="matrix-group">(\w+)</th>', page) == [("2", "Llama"), ("1", "Qwen2")]
    assert re.findall(r'<th colspan="(\d)" class="matrix-model">([\w.-]+)</th>', page) == [
        ("2", "smollm2-135m"), ("1", "qwen2.5-coder-1.5b")]  # each model over its settings, under its architecture
    cell = matrix.cell_anchor("C5b", QWEN.key)
    assert f'href="#{cell}"' in page and "C5b on qwen2.5-coder-1.5b, arc_challenge, letter, 0-shot: not supported; " \
                                       "share: 0.900 [0.800, 1]" in page
    assert page.count('class="badge text-bg-danger matrix-badge"') == 1 and 'verdict-badge' not in page  # one red cell
    assert '<span class="badge text-bg-info">mixed</span> supported in 2 of 3 settings (not supported 1)' in page
    assert page.count('class="matrix-setting"') == 3  # one column per setting; the summary sits in the claim's cell
    details = matrix.detail_table(rows, main=MAIN.key).to_markdown()
    assert f"[C5b]{{#{cell}}}" in details and details.count("\n") == 2 + 6  # header, rule, six cells


def test_the_ledger_calls_a_claim_mixed_where_its_settings_disagree(recorded):
    rows = {row.claim: row for row in ledger.ledger_rows("test")}
    assert rows["C5b"].status == "mixed" and rows["C5b"].agreement() == "supported in 2 of 3 settings (not supported 1)"
    assert rows["C5b"].number == "share: 0.100 [0, 0.200]"  # the main setting's deciding number
    assert rows["C5b"].models[0] == "smollm2-135m, arc_easy, letter, 0-shot"
    assert rows["C4"].status == "supported" and rows["R1"].agreement() == ""
    assert ledger.status_counts(list(rows.values()))["mixed"] == 1
    table = ledger.ledger_table("test").to_markdown()
    assert '[mixed]{.badge .text-bg-info .verdict-badge data-claim="C5b"}' in table
    findings = ledger.findings_text(list(rows.values()))
    assert ("- **C5b** (silent pruning removes the transition): *mixed*: supported in 2 of 3 settings (not supported "
            "1); on the main setting (smollm2-135m, arc_easy, letter, 0-shot) share: 0.100 [0, 0.200].") in findings


def test_recording_a_claim_on_its_settings_removes_the_settings_no_longer_studied(recorded):
    assert sorted(path.name for path in recorded.glob("C5b@*.json")) == sorted(
        f"C5b@{setting.key}.json" for setting in (MAIN, CLOZE, QWEN))
    verdicts.record_settings([verdict("C5b", "supported", 0.1, MAIN)], "test")
    assert [path.name for path in recorded.glob("C5b@*.json")] == [f"C5b@{MAIN.key}.json"]
    assert len(list(recorded.glob("C4@*.json"))) == 3  # another claim's files stay
    with pytest.raises(ValueError, match="one claim part"):
        verdicts.record_settings([verdict("C4", "supported", 0.1, MAIN), verdict("C5b", "supported", 0.1, MAIN)])


def test_a_chapter_shows_the_main_setting_first_then_every_setting(recorded):
    shown = matrix.SettingVerdicts((verdict("C5b", "supported", 0.1, MAIN), verdict("C5b", "not supported", 0.9, QWEN)))
    text = shown._repr_markdown_()
    assert text.startswith(shown.main.marker) and shown.verdicts[1].marker in text
    assert "**C5b on every studied setting: supported in 1 of 2 settings (not supported 1).**" in text
    assert '::: {.callout-note collapse="true" title="C5b on the other settings, in full"}' in text
    decided = matrix.SettingVerdicts.decide(lambda value: verdicts.Verdict("C4", "supported", "cost", value, "."),
                                            {MAIN: (0.1,), QWEN: (0.2,)})
    assert [found.key for found in decided.verdicts] == [f"C4@{MAIN.key}", f"C4@{QWEN.key}"]
