"""The settings of the study (profiles.Setting, claims.breadth, Experiments.for_setting / studied_settings / study): the
registered rule that qualifies a candidate, a setting's results keyed as a profile built for it alone would key them,
and the pruning study of a setting run through the plan on tiny random models."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from golden import GOLDEN_PROFILE, golden_loader
from layercollapse.claims import breadth
from layercollapse.measures.phases import Readout
from layercollapse.storage.store import Store
from layercollapse.study.experiments import Experiments
from layercollapse.study.profiles import CandidateGrid, ProfileError, Setting, SettingStudy

N_ITEMS = 200
GOLD = np.arange(N_ITEMS) % 4  # balanced: chance = 0.25


def readout(accuracies) -> Readout:
    """A readout whose row r answers ``accuracies[r]`` of the items: the gold option on the first share of the items
    with gold != 0, option 0 (right on the gold-0 items) elsewhere."""
    rows = []
    not_zero = np.flatnonzero(GOLD != 0)
    for accuracy in accuracies:
        answer = np.zeros(N_ITEMS, int)
        n_more = round((accuracy - 0.25) * N_ITEMS)
        answer[not_zero[:n_more]] = GOLD[not_zero[:n_more]]
        scores = np.full((N_ITEMS, 4), -2.0, np.float32)
        scores[np.arange(N_ITEMS), answer] = 0.0
        rows.append(scores)
    return Readout(np.array(rows), GOLD, {})


def test_a_candidate_qualifies_by_the_registered_rule():
    assert (breadth.MIN_FOUND, breadth.MIN_HEIGHT) == (0.95, 0.10)  # registered 2026-12-07, before any candidate
    candidates = {
        Setting("m", "arc_easy", "letter"): readout([0.25] * 5 + [0.85] * 4),  # a high, sure transition
        Setting("m", "arc_easy", "cloze"): readout([0.25] * 5 + [0.38] * 4),  # sure, but gains only 0.13
        Setting("m", "mmlu", "letter", 3): readout([0.25] * 9),  # never above chance
    }
    table = breadth.candidate_table(candidates, n_resamples=400)
    assert table["setting"].tolist() == [setting.key for setting in candidates]
    assert table["qualifies"].tolist() == [True, False, False]
    high, low, flat = table.itertuples()
    assert (high.layer, high.found, high.height) == (4, 1.0, pytest.approx(0.60))  # 0.85 - 0.25 across layer 4
    assert low.found >= breadth.MIN_FOUND and low.height == pytest.approx(0.13) and low.height_low <= breadth.MIN_HEIGHT
    assert low.why_not.startswith("height's lower bound") and "≤ 0.10" in low.why_not
    assert pd.isna(flat.layer) and flat.found < 0.05  # at chance, a resample rises above it only by luck
    assert flat.why_not == f"transition in {flat.found:.0%} of resamples (< 95%)"  # said once
    assert breadth.why_not(0.97, None) == "no transition" and breadth.why_not(0.97, 0.2) == ""
    assert breadth.qualifies(0.96, 0.11) and not breadth.qualifies(0.94, 0.5) and not breadth.qualifies(1.0, None)


def test_a_setting_s_results_have_the_keys_of_a_profile_built_for_it_alone(tmp_path):
    experiments = Experiments(GOLDEN_PROFILE, store=Store(tmp_path), compute=True, progress=False,
                              load_model=golden_loader())
    own = experiments.readout("tiny-qwen2-cloze", "arc_easy")
    setting = Setting("tiny-qwen2-cloze", "arc_easy", "cloze", 0)
    narrowed = experiments.for_setting(setting)
    assert narrowed.profile.main_setting == setting and narrowed.profile.tasks == ("arc_easy",)
    assert narrowed.store is experiments.store and narrowed._memory is experiments._memory  # one loaded model
    assert narrowed.readout().spec == own.spec  # read back, not recomputed
    # the committed results of the main setting and of the pruning model keep their keys through a narrowed profile
    main = experiments.for_setting(GOLDEN_PROFILE.main_setting)
    assert [t.spec for t in main.phase_traces("silent")] == [t.spec for t in experiments.phase_traces("silent")]
    assert narrowed.main_trace("iterative").spec == experiments.trace("iterative").spec
    assert experiments.cliff_setting("tiny-qwen2-cloze") == setting
    assert experiments.cliff_settings() == (GOLDEN_PROFILE.main_setting, setting)


def test_the_studied_settings_are_the_main_one_and_those_that_qualify(tmp_path):
    grid = CandidateGrid(models=("tiny-qwen2-cloze",), tasks=("arc_easy",), formats=("cloze", "letter"))
    profile = dataclasses.replace(GOLDEN_PROFILE, candidates=(grid,))
    cloze, letter = Setting("tiny-qwen2-cloze", "arc_easy", "cloze"), Setting("tiny-qwen2-cloze", "arc_easy", "letter")
    assert profile.candidate_settings == (profile.main_setting, cloze, letter)
    experiments = Experiments(profile, store=Store(tmp_path), compute=False, progress=False, load_model=golden_loader())
    # the choice reads the candidate table (a cached property): the rule's verdict on each candidate
    experiments.__dict__["candidates"] = pd.DataFrame({"setting": [s.key for s in profile.candidate_settings],
                                                       "qualifies": [False, False, True]})
    assert experiments.studied_settings() == (profile.main_setting, letter)  # the main one whether or not it qualifies
    assert experiments.studies(letter) and not experiments.studies(cloze)
    everything = Experiments(dataclasses.replace(profile, study="all"), store=Store(tmp_path), compute=False)
    everything.__dict__["candidates"] = experiments.candidates
    assert everything.studied_settings() == profile.candidate_settings
    with pytest.raises(ProfileError, match="'shots' must be >= 0"):
        dataclasses.replace(GOLDEN_PROFILE, candidates=(CandidateGrid(("tiny-qwen2-cloze",), ("arc_easy",),
                                                                      shots=(-1,)),))


def test_the_plan_reads_every_candidate_then_studies_each_setting(tmp_path):
    grid = CandidateGrid(models=("tiny-qwen2-cloze",), tasks=("arc_easy",), formats=("cloze", "letter"))
    sizes = SettingStudy(n_phase_seeds=1, n_phase_items=4, n_random_orders=1, schedules=("iterative", "reverse"))
    profile = dataclasses.replace(GOLDEN_PROFILE, candidates=(grid,), study="all", setting_study=sizes)
    experiments = Experiments(profile, store=Store(tmp_path), compute=True, progress=False, load_model=golden_loader())
    steps = {step.name: step for step in experiments.plan}
    letter = Setting("tiny-qwen2-cloze", "arc_easy", "letter")
    # the cloze candidate is the profile's own readout of that model; the letter one is new
    assert f"readout {letter.key}" in steps and "readout tiny-qwen2-cloze@arc_easy@cloze@0shot" not in steps
    study = steps[f"study {letter.key}"]
    assert {need.name for need in study.needs} >= {"readout tiny-qwen2-cloze arc_easy", f"readout {letter.key}"}
    for name in [name for name in steps if name.startswith("readout ")] + [f"study {letter.key}"]:
        steps[name].run()
    narrowed = experiments.for_setting(letter)
    assert (narrowed.profile.n_phase_seeds, narrowed.profile.n_random_orders) == (1, 1)  # the setting study's sizes
    silent = narrowed.phase_traces("silent")
    assert len(silent) == 1 and all(trace.readout_at(1)[1].ndim == 3 for trace in silent)  # every network read out
    first = [item.id for item in narrowed.evaluation("arc_easy")][:4]  # the dose-response's items: the first four
    assert silent[0].spec["evaluation_ids"] == first and len(silent[0].gold) == 4
    schedules = experiments.schedule_traces(letter)
    assert set(schedules) == {"iterative", "reverse", "random"} and len(schedules["random"]) == 1
    assert narrowed.lm_loss_along(schedules["iterative"]).shape == (schedules["iterative"].n_steps,)
    checking = experiments.on_store(experiments.store, compute=False)
    checking.study(letter)  # everything it needs is stored now: it computes nothing


def test_the_settings_besides_the_main_one_take_the_setting_study_s_sizes():
    sizes = SettingStudy(n_phase_seeds=3, n_phase_items=4, n_random_orders=0, schedules=("iterative",))
    profile = dataclasses.replace(GOLDEN_PROFILE, n_phase_seeds=2, phase_tasks=("arc_easy", "arc_challenge"),
                                  setting_study=sizes)
    other = profile.setting_profile(Setting("tiny-qwen2-cloze", "arc_easy", "letter"))
    assert (other.n_phase_seeds, other.n_phase_items, other.n_random_orders) == (3, 4, 0)
    # the pruning model's own setting keeps the random orders the main study ran on it; its dose-response is new
    pruning = profile.setting_profile(profile.pruning_setting)
    assert (pruning.n_phase_seeds, pruning.n_phase_items, pruning.n_random_orders) == (3, 4, profile.n_random_orders)
    main = profile.setting_profile(profile.main_setting)  # the main setting runs the profile's full study
    assert (main.n_phase_seeds, main.n_phase_items, main.n_random_orders) == (2, None, profile.n_random_orders)
    # the main model's other phase task keeps its dose-response's sizes (it is part of the main study)
    challenge = profile.setting_profile(Setting("tiny-llama-letter", "arc_challenge", "letter"))
    assert (challenge.n_phase_seeds, challenge.n_phase_items, challenge.n_random_orders) == (2, None, 0)
    with pytest.raises(ProfileError, match="'setting_study: n_phase_items' must be >= 1 or null"):
        dataclasses.replace(GOLDEN_PROFILE, setting_study=SettingStudy(n_phase_items=0))
