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
