"""The commands' own lines: what they say about their arguments before any work."""

from __future__ import annotations

import pytest
from layercollapse.cli.main import build_parser, main


@pytest.mark.parametrize("command, said", [
    (["evaluate"], "--limit 10 is more than the 5 items of mmlu:anatomy/dev: using all 5"),
    (["prune", "--n-calibration", "2", "--schedule", "reverse"],
     "--limit 10 is more than the 3 items of mmlu:anatomy/dev left after 2 calibration items: using all 3"),
], ids=["evaluate", "prune"])
def test_a_limit_above_the_task_s_items_is_said_before_the_model_loads(tiny_folder, tmp_path, capsys, command, said):
    store = ["--store", str(tmp_path / "store")] if command[0] == "prune" else []
    argv = [*command, *store, "--model", str(tiny_folder), "--dtype", "fp32", "--task", "mmlu:anatomy",
            "--split", "dev"]
    assert main([*argv, "--limit", "10"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == said
    assert main([*argv, "--limit", "3"]) == 0
    assert "is more than" not in capsys.readouterr().out


def test_the_split_help_says_which_split_is_the_default(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["evaluate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--split SPLIT task split (default: validation; test for mmlu)" in text
    assert "the committed results use --split test" in text


def test_the_diagnose_help_says_what_it_costs(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["diagnose", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "about items × L²/2 decoder-layer passes over one item" in text
    assert "Before the work starts it prints its estimated time" in text


@pytest.fixture
def audited(monkeypatch):
    """``reproduce --audit``'s command over a stand-in profile, with no recorded verdicts."""
    from types import SimpleNamespace

    from layercollapse.claims import verdicts

    monkeypatch.setattr(verdicts, "load_verdict_records", lambda name: {})
    return SimpleNamespace(profile=SimpleNamespace(name="default"))


def test_the_audit_prints_each_progress_line_as_it_is_said(audited, capsys, monkeypatch):
    from layercollapse.cli.reproduce import audit_command
    from layercollapse.study import audit as audit_module

    def two_lines(experiments, minutes, seed, rejudge, records, tolerance, say, chapter_of, chapter_seconds):
        # the command counts executing the chapters again in the budget: it passes where each verdict is decided
        assert chapter_of("C5b@m@t@letter@0shot") == "chapters/11-pruned-dynamics.qmd"
        assert chapter_seconds["chapters/11-pruned-dynamics.qmd"] > 0
        say("[1/1] readout m t (est. 10 s; step 'readout m t')")
        assert capsys.readouterr().out.splitlines()[-1].startswith("[1/1] readout m t")  # printed at once
        say("      done in 9 s")
        return audit_module.AuditReport([], [], tolerance)

    monkeypatch.setattr(audit_module, "audit", two_lines)
    assert audit_command(audited, 10, 0, 1e-3) == 0
    assert capsys.readouterr().out.splitlines()[0] == "      done in 9 s"


def test_the_audit_refuses_a_budget_that_fits_no_result_in_one_line(audited, capsys, monkeypatch):
    from layercollapse.cli.reproduce import audit_command
    from layercollapse.study import audit as audit_module

    cheapest = audit_module.Candidate("readout", "k", "readout m t", 130.0, "m t")

    def nothing_fits(experiments, minutes, *args, **kwargs):
        raise audit_module.NothingFits(minutes, cheapest)

    monkeypatch.setattr(audit_module, "audit", nothing_fits)
    assert audit_command(audited, 2, 0, 1e-3) == 2
    assert capsys.readouterr().out.splitlines()[-1] == (
        "error: --minutes 2 fits no stored result: the cheapest, readout m t (plan step 'readout m t'), is estimated "
        "at 2 min 10 s; pass --minutes 3 or more")
