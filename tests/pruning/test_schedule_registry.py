"""A schedule is one record: registering it makes it runnable through ``prune``, the command line and a profile,
named and coloured on the site, with nothing else to edit."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from golden import GOLDEN_PROFILE, golden_loader
from layercollapse.cli.main import main
from layercollapse.pruning import SCHEDULES, Schedule, prune, register_schedule, schedule_labels
from layercollapse.pruning.schedules import Plan, order_planner
from layercollapse.site.plots import series_color
from layercollapse.storage.store import Store
from layercollapse.study.experiments import Experiments
from layercollapse.study.profiles import ProfileError


def every_other(inputs) -> Plan:
    """Even layers first (0, 2, 4, ...), then odd ones: a planner in five lines."""
    order = [*range(0, inputs.n_layers, 2), *range(1, inputs.n_layers, 2)]
    return Plan(order_planner(order), inputs.n_steps)


@pytest.fixture
def registered():
    schedule = register_schedule(Schedule("every_other", "every other layer", every_other, color="#123456"))
    yield schedule
    del SCHEDULES["every_other"]


def test_a_registered_schedule_runs_through_prune(registered, tiny_model, tokenizer, items):
    trace = prune(tiny_model("llama"), tokenizer, items, "every_other", task="arc_easy", progress=False)
    assert trace.removal_order() == [0, 2, 4, 1] and trace.spec["schedule"] == "every_other"
    assert trace.spec["seed"] is None and trace.spec["calibration_ids"] == []  # the record says it takes neither
    assert schedule_labels()["every_other"] == "every other layer" and series_color("every other layer") == "#123456"


def test_a_registered_schedule_runs_through_the_command_line(registered, tiny_folder, tmp_path, capsys):
    assert main(["prune", "--model", str(tiny_folder), "--dtype", "fp32", "--limit", "4", "--n-calibration", "2",
                 "--schedule", "every_other", "--store", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "schedule every_other" in out
    removed = [line.split()[1] for line in out.splitlines() if line.split() and line.split()[0].isdigit()]
    assert removed == ["-", "0", "2", "4", "1"]


def test_a_registered_schedule_runs_through_a_profile_and_an_unknown_one_is_refused(registered, tmp_path):
    profile = dataclasses.replace(GOLDEN_PROFILE, name="golden-every-other", schedules=("every_other",), finetune=None)
    experiments = Experiments(profile, store=Store(tmp_path), compute=True, progress=False, load_model=golden_loader())
    step = next(step for step in experiments.plan if step.name == "trace every_other")
    step.run()
    trace = experiments.trace("every_other")
    assert trace.removal_order()[:2] == [0, 2] and np.isfinite(trace.scores[-1]).any()
    del SCHEDULES["every_other"]
    with pytest.raises(ProfileError, match=r"unknown schedule\(s\) \['every_other'\]"):
        profile.check_names()
    register_schedule(registered)  # for the fixture's clean-up
