"""Verdict rules R1, C6 and C7 (layercollapse.claims.perturbation) on constructed data with a known answer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from layercollapse.claims import perturbation as P

N_OPTIONS = 4
N_RESAMPLES = 500


def scores_with_gold_logit(gold_logit: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """Scores float32 [..., n_items, N_OPTIONS]: ``gold_logit`` on the gold option, 0 elsewhere."""
    gold_logit = np.asarray(gold_logit, dtype=np.float32)
    scores = np.zeros(gold_logit.shape + (N_OPTIONS,), dtype=np.float32)
    np.put_along_axis(scores, np.broadcast_to(gold[..., None], gold_logit.shape + (1,)).astype(np.int64),
                      gold_logit[..., None], axis=-1)
    return scores


# --------------------------------------------------------------------------------------------- R1

def results_frame(n_items: int, seeds: tuple[int, ...], models=("m1", "m2"), tasks=("t1", "t2")) -> pd.DataFrame:
    """A ``store.list_results`` frame: readouts of every model x task, iterative and random traces, an lm_loss."""
    ids = [f"i{k}" for k in range(n_items)]
    rows = []
    for model in models:
        for task in tasks:
            rows.append({"kind": "readout", "created": "2026-01-01T00:00:00+00:00", "spec.model": model,
                         "spec.task": task, "spec.split": "test", "spec.format": "letter", "spec.item_ids": ids})
    base = {"spec.model": models[0], "spec.task": tasks[0], "spec.split": "test", "spec.format": "letter",
            "spec.evaluation_ids": ids, "created": "2026-01-02T00:00:00+00:00"}
    rows.append({"kind": "trace", **base, "spec.schedule": "iterative", "spec.seed": None})
    rows += [{"kind": "trace", **base, "spec.schedule": "random", "spec.seed": seed} for seed in seeds]
    rows.append({"kind": "lm_loss", "created": "2026-01-03T00:00:00+00:00",
                 **{k.replace("spec.", "spec.trace_spec."): v for k, v in base.items() if k.startswith("spec.")},
                 "spec.trace_spec.schedule": "iterative"})
    return pd.DataFrame(rows)


def test_run_table_groups_results_and_counts_seeds():
    runs = P.run_table(results_frame(40, (0, 1, 2)))
    assert len(runs) == 4 + 2 + 1  # readouts, trace iterative + random, lm_loss along iterative
    random = runs[runs["schedule"] == "random"].iloc[0]
    assert random["seeded"] and random["seeds"] == [0, 1, 2] and random["n_runs"] == 3 and random["n_items"] == 40
    lm = runs[runs["kind"] == "lm_loss"].iloc[0]
    assert (lm["model"], lm["task"], lm["schedule"], lm["n_items"]) == ("m1", "t1", "iterative", 40)
    assert P.run_table(results_frame(40, (0,)), models=["m2"])["model"].unique().tolist() == ["m2"]
    assert P.run_table(results_frame(40, (0,)), n_items=[12]).empty


def test_r1_supported_with_enough_items_seeds_models_and_tasks():
    verdict = P.verdict_r1(P.run_table(results_frame(40, (0, 1))))
    assert verdict.status == "supported" and verdict.value == 40 and verdict.n == 7


@pytest.mark.parametrize("n_items, seeds, models, why", [
    (12, (0, 1), ("m1", "m2"), "fewer than 30 items"),
    (40, (0,), ("m1", "m2"), "fewer than 2 seeds"),
    (40, (0, 1), ("m1",), "1 model(s)"),
])
def test_r1_inconclusive_names_what_is_missing(n_items, seeds, models, why):
    verdict = P.verdict_r1(P.run_table(results_frame(n_items, seeds, models=models)))
    assert verdict.status == "inconclusive" and why in verdict.text


def test_r1_inconclusive_on_an_empty_store():
    assert P.verdict_r1(P.run_table(pd.DataFrame(columns=["kind", "created"]))).status == "inconclusive"


def test_transition_and_collapse_spreads():
    class FakeTrace:  # the attributes collapse_by_seed and seed_curve read
        def __init__(self, collapse_step: int, seed: int):
            rng = np.random.default_rng(seed)
            self.gold = rng.integers(0, N_OPTIONS, 200)
            logit = np.where(np.arange(10)[:, None] < collapse_step, 4.0, -4.0) + rng.normal(0, 0.1, (10, 200))
            self.scores = scores_with_gold_logit(logit, np.broadcast_to(self.gold, (10, 200)))
            self.fraction_removed = np.arange(10) / 10
            self.schedule, self.seed = "random", seed

        def accuracy(self):
            return (self.scores.argmax(-1) == self.gold).mean(-1)

        def mean_dm(self):
            return self.accuracy()

    collapse = P.collapse_by_seed([FakeTrace(4, 0), FakeTrace(6, 1)], n_resamples=100)
    assert collapse["fraction_removed"].tolist() == [0.4, 0.6]
    spread = P.seed_spread(collapse["fraction_removed"], "collapse").iloc[0]
    assert spread["mean"] == pytest.approx(0.5) and spread["sd"] == pytest.approx(np.std([0.4, 0.6], ddof=1))
    assert P.seed_spread([np.nan]).iloc[0]["n_missing"] == 1
    curve = P.seed_curve([FakeTrace(4, 0), FakeTrace(6, 1)])
    assert curve["accuracy"].tolist()[:4] == [1.0] * 4 and curve["n_runs"].iloc[0] == 2


# --------------------------------------------------------------------------------------------- C6

def noise_data(silent_drop: float, decisive_drop: float, n_items: int = 200, seed: int = 0):
    """A noise sweep: clean accuracy 0.8; noise flips ``drop`` of the items to wrong in each phase."""
    rng = np.random.default_rng(seed)
    gold = rng.integers(0, N_OPTIONS, n_items)
    clean_right = rng.random(n_items) < 0.8
    rows, logits = [], []
    for layer, phase, drop in ((2, "silent", silent_drop), (8, "decisive", decisive_drop)):
        for sigma2 in (0.0, 0.02, 0.1):
            for draw in range(2):
                right = clean_right.copy()
                if sigma2 > 0:
                    right &= rng.random(n_items) >= drop * (1 if sigma2 >= 0.02 else 0) / 0.8
                rows.append({"layer": layer, "phase": phase, "sigma2": sigma2, "draw": draw})
                logits.append(np.where(right, 2.0, -2.0) + rng.normal(0, 0.1, n_items))
    table = pd.DataFrame(rows)
    scores = scores_with_gold_logit(np.stack(logits), np.broadcast_to(gold, (len(rows), n_items)))
    return table, scores, gold


def test_c6_supported_when_silent_degrades_and_decisive_holds():
    table, scores, gold = noise_data(silent_drop=0.4, decisive_drop=0.0)
    verdict = P.verdict_c6(table, scores, gold, n_resamples=N_RESAMPLES)
    assert verdict.status == "supported" and verdict.ci[0] > 0 and verdict.n == 200
    effects = P.noise_effects(table, scores, gold, n_resamples=N_RESAMPLES)
    assert len(effects) == 6 and (effects.loc[effects["sigma2"] == 0, "drop"] == 0).all()
    assert (effects["acc_low"] <= effects["accuracy"]).all() and (effects["accuracy"] <= effects["acc_high"]).all()


@pytest.mark.parametrize("silent_drop, decisive_drop", [(0.0, 0.0), (0.4, 0.4)])
def test_c6_not_supported_when_silent_holds_or_decisive_degrades(silent_drop, decisive_drop):
    table, scores, gold = noise_data(silent_drop, decisive_drop)
    assert P.verdict_c6(table, scores, gold, n_resamples=N_RESAMPLES).status == "not supported"


def test_c6_inconclusive_without_a_decisive_phase_or_above_chance_model():
    table, scores, gold = noise_data(0.4, 0.0)
    silent_only = table["phase"] == "silent"
    assert P.verdict_c6(table[silent_only].reset_index(drop=True), scores[silent_only.to_numpy()], gold,
                        n_resamples=N_RESAMPLES).status == "inconclusive"
    at_chance = scores.copy()
    at_chance[..., :] = 0.0  # all options tie: every item wrong, the model is not above chance
    assert P.verdict_c6(table, at_chance, gold, n_resamples=N_RESAMPLES).status == "inconclusive"


# --------------------------------------------------------------------------------------------- C7

def finetune_data(recovered_logit: dict[float, float], n_items: int = 150, seed: int = 0):
    """Fine-tuning results: before fine-tuning the gold logit is -1, after it -1 + ``recovered_logit[f]``."""
    rng = np.random.default_rng(seed)
    gold = rng.integers(0, N_OPTIONS, n_items)
    fractions = sorted(recovered_logit)
    before = np.stack([-1.0 + rng.normal(0, 0.3, n_items) for _ in fractions])
    after = np.stack([before[i] + recovered_logit[f] + rng.normal(0, 0.3, n_items) for i, f in enumerate(fractions)])
    gold_rows = np.broadcast_to(gold, (len(fractions), n_items))
    table = pd.DataFrame({"fraction_removed": fractions, "n_removed": [int(f * 20) for f in fractions],
                          "n_kept": [20 - int(f * 20) for f in fractions]})
    arrays = {"scores_before": scores_with_gold_logit(before, gold_rows),
              "scores_after": scores_with_gold_logit(after, gold_rows), "gold": gold}
    return table, arrays


def test_c7_supported_when_recovery_plateaus_beyond_40_percent():
    table, arrays = finetune_data({0.2: 1.0, 0.4: 2.0, 0.6: 2.0, 0.8: 1.5})
    verdict = P.verdict_c7(table, arrays, n_resamples=N_RESAMPLES)
    assert verdict.status == "supported" and verdict.ci[0] <= 0
    frame = P.recovery_table(table, arrays, n_resamples=N_RESAMPLES)
    assert len(frame) == 8 and (frame["rec_low"] > 0).all()


def test_c7_inconclusive_when_the_gain_interval_is_too_wide_to_show_a_plateau():
    table, arrays = finetune_data({0.2: 0.1, 0.4: 0.2, 0.6: 0.25}, n_items=40)  # small recovery, noisy gain
    verdict = P.verdict_c7(table, arrays, n_resamples=N_RESAMPLES)
    assert verdict.status == "inconclusive" and verdict.ci[0] <= 0 < verdict.ci[1]
    assert "tell a plateau from further growth" in verdict.text  # recovery at 40% is significant; the gain is unclear


def test_c7_not_supported_when_recovery_keeps_growing():
    table, arrays = finetune_data({0.2: 0.5, 0.4: 1.0, 0.6: 2.5})
    assert P.verdict_c7(table, arrays, n_resamples=N_RESAMPLES).status == "not supported"


def test_c7_inconclusive_with_too_few_fractions_or_no_recovery():
    table, arrays = finetune_data({0.2: 1.0, 0.4: 2.0})
    assert P.verdict_c7(table, arrays, n_resamples=N_RESAMPLES).status == "inconclusive"
    table, arrays = finetune_data({0.2: 0.0, 0.4: 0.0, 0.6: 0.0})
    assert P.verdict_c7(table, arrays, n_resamples=N_RESAMPLES).status == "inconclusive"


def test_run_table_keeps_every_size_when_a_profile_evaluates_whole_splits():
    assert len(P.run_table(results_frame(40, (0,)), n_items=[None, 100])) == 7


def test_collapse_by_seed_uses_the_cliff_edge_chapters_margin():
    """Accuracy settles at chance + 0.07: collapsed under max(0.05, 2.5 SE) = 0.081 (200 items, chance 0.3),
    not under a flat 0.05 -- the seed table and the cliff-edge chapter apply one rule."""
    from layercollapse.claims.collapse import collapse_margin

    gold = np.repeat([0, 1, 2, 3], [60, 50, 45, 45])
    after = np.zeros(200, dtype=int)  # the constant answer A ...
    after[60:74] = gold[60:74]  # ... plus 14 items (0.07) right although their answer is not A

    class Trace:
        schedule, seed = "random", 0
        fraction_removed = np.arange(6) / 6
        scores = np.stack([np.eye(N_OPTIONS)[gold if step < 3 else after] for step in range(6)]).astype(np.float32)

    Trace.gold = gold
    assert collapse_margin(0.3, 200) == pytest.approx(2.5 * np.sqrt(0.21 / 200))
    assert P.collapse_by_seed([Trace()], n_resamples=100)["step"].tolist() == [3]
    assert np.isnan(P.collapse_by_seed([Trace()], margin=0.05, n_resamples=100)["step"].iloc[0])


def test_c6_inconclusive_when_the_silent_drop_is_neither_significant_nor_bounded_by_c4s_margin():
    from layercollapse.claims.phase_pruning import DROP_TOLERANCE

    table, scores, gold = noise_data(silent_drop=0.05, decisive_drop=0.0, n_items=40, seed=0)
    verdict = P.verdict_c6(table, scores, gold, n_resamples=N_RESAMPLES)
    assert verdict.ci[0] <= 0 < DROP_TOLERANCE < verdict.ci[1]
    assert verdict.status == "inconclusive" and "not ruled out" in verdict.text
