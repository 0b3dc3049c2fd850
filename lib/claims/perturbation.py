"""Verdicts R1 (statistics and scale), C6 (noise sensitivity) and C7 (fine-tuning recovery).

Each ``verdict_*`` applies one rule, fixed here and stated in its docstring, to
results of :class:`layercollapse.study.experiments.Experiments`; the helpers before it
turn those results into the tables the chapters show (every mean with its
interval). Layer indices are those of the intact model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from layercollapse.claims.collapse import collapse_margin
from layercollapse.claims.phase_pruning import DROP_TOLERANCE
from layercollapse.claims.verdicts import Verdict, lies_above, lies_below, verdict_rule
from layercollapse.measures import metrics, stats
from layercollapse.measures.phases import Phases

__all__ = [
    "SEEDED_SCHEDULES",
    "run_table",
    "verdict_r1",
    "collapse_by_seed",
    "seed_spread",
    "seed_curve",
    "transition_spread",
    "transition_resamples",
    "noise_effects",
    "phase_drop",
    "verdict_c6",
    "recovery_table",
    "recovery_gain",
    "verdict_c7",
]

# ------------------------------------------------------------------------------------------------
# R1: statistics and scale
# ------------------------------------------------------------------------------------------------

#: Schedules whose result depends on a random seed (the others are deterministic).
SEEDED_SCHEDULES = frozenset({"random", "random_in_range"})
#: What R1 asks of every experiment: evaluation items, and seeds where seeds apply.
MIN_ITEMS, MIN_SEEDS = 30, 2
#: ...and of the study: models and tasks read out layer by layer (the paper used 3 and 3).
MIN_MODELS, MIN_TASKS = 2, 2
INTACT = "none (intact model)"


def _field(row: pd.Series, name: str) -> Any:
    """``spec.<name>``, else ``spec.trace_spec.<name>`` (results derived from a trace), else None."""
    for column in (f"spec.{name}", f"spec.trace_spec.{name}"):
        value = row.get(column)
        if value is not None and not (isinstance(value, float) and np.isnan(value)):
            return value
    return None


def _n_items(row: pd.Series) -> int:
    for column in ("spec.item_ids", "spec.evaluation_ids", "spec.trace_spec.evaluation_ids"):
        value = row.get(column)
        if isinstance(value, (list, tuple, np.ndarray)):
            return len(value)
    return 0


def run_table(results: pd.DataFrame, models: Sequence[str] | None = None, tasks: Sequence[str] | None = None,
              n_items: Sequence[int] | None = None) -> pd.DataFrame:
    """Every evaluated experiment of a results store: one row per (kind, model, task, split, format, schedule).

    Args:
        results: ``store.list_results(store)`` (one row per stored result, spec flattened).
        models, tasks: keep only these (None: all); pass a profile's to list its runs.
        n_items: keep only evaluation sets of these sizes (None, or a None among them: all); a
            store shared by several profiles holds the same model and task at other sizes.

    Returns:
        columns kind, model, task, split, format, schedule, n_items (the smallest evaluation
        set of the group), seeded (bool), seeds (sorted list), n_runs (distinct seeds, or 1
        for a deterministic schedule), n_results (stored results, older code versions
        included), last_created (ISO time).
    """
    columns = ["kind", "model", "task", "split", "format", "schedule", "n_items", "seeded", "seeds", "n_runs",
               "n_results", "last_created"]
    rows = []
    for _, row in results.iterrows():
        seed = _field(row, "seed")
        rows.append({"kind": row["kind"], "model": _field(row, "model"), "task": _field(row, "task"),
                     "split": _field(row, "split"), "format": _field(row, "format"),
                     "schedule": _field(row, "schedule") or INTACT, "n_items": _n_items(row),
                     "seed": None if seed is None else int(seed), "created": row.get("created")})
    flat = pd.DataFrame(rows, columns=["kind", "model", "task", "split", "format", "schedule", "n_items", "seed",
                                       "created"])
    if models is not None:
        flat = flat[flat["model"].isin(list(models))]
    if tasks is not None:
        flat = flat[flat["task"].isin(list(tasks))]
    if n_items is not None and None not in n_items:  # None = the whole split, of a size not known here
        flat = flat[flat["n_items"].isin(list(n_items))]
    if flat.empty:
        return pd.DataFrame(columns=columns)
    keys = ["kind", "model", "task", "split", "format", "schedule"]
    grouped = []
    for key, group in flat.groupby(keys, dropna=False, sort=True):
        seeded = key[-1] in SEEDED_SCHEDULES
        seeds = sorted({int(s) for s in group["seed"].dropna()})
        grouped.append({**dict(zip(keys, key)), "n_items": int(group["n_items"].min()), "seeded": seeded,
                        "seeds": seeds, "n_runs": max(len(seeds), 1) if seeded else 1,
                        "n_results": len(group), "last_created": group["created"].max()})
    return pd.DataFrame(grouped, columns=columns)


@verdict_rule
def verdict_r1(runs: pd.DataFrame, min_items: int = MIN_ITEMS, min_seeds: int = MIN_SEEDS,
               min_models: int = MIN_MODELS, min_tasks: int = MIN_TASKS) -> Verdict:
    """R1: does the study report its statistics over enough items, seeds, models and tasks?

    Rule (fixed in advance): supported when (a) every evaluated experiment has at least
    ``min_items`` evaluation items (so item-bootstrap intervals mean something), (b) every
    seeded schedule (random orders, random layers inside a phase) has at least ``min_seeds``
    seeds (so a band across seeds exists), and (c) layer-wise readouts cover at least
    ``min_models`` models and ``min_tasks`` tasks. Otherwise inconclusive, naming what is
    missing: R1 asks for statistics to be reported, which a small build cannot refute.

    Args:
        runs: ``run_table(...)`` of the profile.

    Returns:
        Verdict; statistic = the smallest evaluation set (items), n = experiments listed.
    """
    if runs.empty:
        return Verdict("R1", "inconclusive", "smallest evaluation set (items)", None, n=0,
                       text="No stored experiment was found for this profile, so nothing can be reported yet.")
    readouts = runs[runs["kind"] == "readout"]
    n_models, n_tasks = readouts["model"].nunique(), readouts["task"].nunique()
    small = runs[runs["n_items"] < min_items]
    few_seeds = runs[runs["seeded"] & (runs["n_runs"] < min_seeds)]
    missing = []
    if len(small):
        missing.append(f"{len(small)} of {len(runs)} experiments have fewer than {min_items} items "
                       f"(smallest: {int(runs['n_items'].min())})")
    if len(few_seeds):
        missing.append(f"{len(few_seeds)} seeded schedules have fewer than {min_seeds} seeds")
    if n_models < min_models or n_tasks < min_tasks:
        missing.append(f"readouts cover {n_models} model(s) and {n_tasks} task(s), "
                       f"fewer than {min_models} and {min_tasks}")
    rule = (f"Rule: every experiment with >= {min_items} items, every seeded schedule with >= {min_seeds} seeds, "
            f"readouts of >= {min_models} models and >= {min_tasks} tasks.")
    seeded = runs[runs["seeded"]]
    seeds_text = (f"seeded schedules have {int(seeded['n_runs'].min())}-{int(seeded['n_runs'].max())} seeds"
                  if len(seeded) else "no seeded schedule is stored")
    found = (f"{len(runs)} experiments over {n_models} model(s) and {n_tasks} task(s); "
             f"{int(runs['n_items'].min())}-{int(runs['n_items'].max())} items each; {seeds_text}.")
    if missing:
        return Verdict("R1", "inconclusive", "smallest evaluation set (items)", float(runs["n_items"].min()),
                       n=len(runs), text=f"{found} Missing: {'; '.join(missing)}. {rule}")
    return Verdict("R1", "supported", "smallest evaluation set (items)", float(runs["n_items"].min()), n=len(runs),
                   text=f"{found} Every figure reports an item-bootstrap interval or a band across seeds. {rule}")


def collapse_by_seed(traces: Sequence, margin: float | None = None, n_resamples: int = 1000,
                     seed: int = 0) -> pd.DataFrame:
    """Collapse point (``stats.collapse_point``) of each pruning trace, e.g. one per random seed.

    Args:
        traces: ``pruning.Trace`` objects (scores [n_steps, n_items, n_options], gold).
        margin: accuracy above chance (best constant answer) still counted as collapsed; None: the
            cliff-edge chapter's rule, ``collapse.collapse_margin`` (max(0.05, 2.5 SE at chance)).

    Returns:
        one row per trace: schedule, seed, step (NaN: never collapses), fraction_removed and its
        item-bootstrap interval (ci_low, ci_high), found_fraction (resamples with a collapse), chance.
    """
    rows = []
    for trace in traces:
        chance = metrics.chance_accuracy(trace.gold, trace.scores.shape[-1])
        used = collapse_margin(chance, len(trace.gold)) if margin is None else margin
        result = stats.collapse_point(trace.fraction_removed, metrics.correct(trace.scores, trace.gold), chance,
                                      margin=used, n_resamples=n_resamples, seed=seed)
        ci = result.fraction_removed_ci or (np.nan, np.nan)
        rows.append({"schedule": trace.schedule, "seed": trace.seed,
                     "step": np.nan if result.step is None else result.step,
                     "fraction_removed": np.nan if result.fraction_removed is None else result.fraction_removed,
                     "ci_low": ci[0], "ci_high": ci[1], "found_fraction": result.found_fraction, "chance": chance})
    return pd.DataFrame(rows, columns=["schedule", "seed", "step", "fraction_removed", "ci_low", "ci_high",
                                       "found_fraction", "chance"])


def seed_spread(values: Sequence[float] | np.ndarray, name: str = "value") -> pd.DataFrame:
    """Mean, SD and 2.5-97.5 percentile band across seeds of one number (NaN = not found, dropped).

    Returns:
        one row: quantity, n_runs (seeds with a value), n_missing, mean, sd, low, high.
    """
    values = np.asarray(values, dtype=np.float64)
    found = values[~np.isnan(values)]
    row: dict[str, Any] = {"quantity": name, "n_runs": int(found.size), "n_missing": int(values.size - found.size)}
    if found.size:
        summary = stats.seed_summary(found)
        row.update({key: float(summary[key]) for key in ("mean", "sd", "low", "high")})
    else:
        row.update({key: np.nan for key in ("mean", "sd", "low", "high")})
    return pd.DataFrame([row])


def seed_curve(traces: Sequence) -> pd.DataFrame:
    """Accuracy and mean DM along equally long traces (one per seed): mean and band across seeds per step.

    Returns:
        one row per step: step, fraction_removed, accuracy / acc_low / acc_high / acc_sd,
        mean_dm / dm_low / dm_high, n_runs, schedule.
    """
    accuracy = np.stack([trace.accuracy() for trace in traces])  # [n_seeds, n_steps]
    dm = np.stack([trace.mean_dm() for trace in traces])  # [n_seeds, n_steps]
    acc, mdm = stats.seed_summary(accuracy), stats.seed_summary(dm)
    return pd.DataFrame({"step": np.arange(accuracy.shape[1]), "fraction_removed": traces[0].fraction_removed,
                         "accuracy": acc["mean"], "acc_low": acc["low"], "acc_high": acc["high"], "acc_sd": acc["sd"],
                         "mean_dm": mdm["mean"], "dm_low": mdm["low"], "dm_high": mdm["high"],
                         "n_runs": acc["n_runs"], "schedule": traces[0].schedule})


def _resampled_layers(phases: Phases) -> np.ndarray:
    """Transition layer of each item resample (original layer index; -1 = no transition): int [n_resamples]."""
    return stats.layer_of_row(np.asarray(phases.transition.resampled))  # resampled: readout rows


def transition_spread(phases_by_run: Mapping[tuple[str, str], Phases]) -> pd.DataFrame:
    """Transition layer of each (model, task) readout with its item-bootstrap spread.

    Returns:
        one row per run: model, task, n_layers, n_items, layer (NaN: none), ci_low, ci_high
        (percentile interval over resamples with a transition), boot_mean, boot_sd,
        found_fraction (resamples with a transition), chance.
    """
    rows = []
    for (model, task), phases in phases_by_run.items():
        layers = _resampled_layers(phases)
        found = layers[layers >= 0]
        ci = phases.layer_ci or (np.nan, np.nan)
        rows.append({"model": model, "task": task, "n_layers": phases.n_layers, "n_items": phases.transition.n_items,
                     "layer": np.nan if phases.layer is None else phases.layer, "ci_low": ci[0], "ci_high": ci[1],
                     "boot_mean": float(found.mean()) if found.size else np.nan,
                     "boot_sd": float(found.std(ddof=1)) if found.size > 1 else np.nan,
                     "found_fraction": phases.transition.found_fraction, "chance": phases.chance})
    return pd.DataFrame(rows)


def transition_resamples(phases_by_run: Mapping[tuple[str, str], Phases]) -> pd.DataFrame:
    """Distribution of the transition layer over item resamples, per (model, task).

    Returns:
        one row per (model, task, layer) with layer -1 meaning "no transition": fraction of resamples.
    """
    frames = []
    for (model, task), phases in phases_by_run.items():
        layers, counts = np.unique(_resampled_layers(phases), return_counts=True)
        frames.append(pd.DataFrame({"model": model, "task": task, "layer": layers,
                                    "fraction": counts / counts.sum()}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["model", "task", "layer",
                                                                                      "fraction"])


# ------------------------------------------------------------------------------------------------
# C6: noise sensitivity of the phases
# ------------------------------------------------------------------------------------------------

#: The paper's variances: the Silent Phase degrades at 0.02, the Decisive Phase holds at 0.1.
SILENT_SIGMA2, DECISIVE_SIGMA2 = 0.02, 0.1


def _per_item(table: pd.DataFrame, scores: np.ndarray, gold: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-item correctness and DM averaged over the rows in ``mask`` (draws, layers): float [n_items] each."""
    selected = scores[np.asarray(mask)]  # [n_rows, n_items, n_options]
    return (metrics.correct(selected, gold).mean(axis=0),
            metrics.decision_margin(selected, gold).mean(axis=0))


def noise_effects(table: pd.DataFrame, scores: np.ndarray, gold: np.ndarray, n_resamples: int = 2000,
                  seed: int = 0) -> pd.DataFrame:
    """Accuracy and DM under noise, per perturbed layer and variance, with item-bootstrap intervals.

    Per item, correctness and DM are averaged over the noise draws; the interval is the BCa
    bootstrap over items. ``drop`` = clean accuracy - noisy accuracy (σ² = 0 of the same
    layer), with its paired item-bootstrap interval, and McNemar's test on the first draw.

    Args:
        table, scores, gold: ``Experiments.noise_sweep()`` (table rows index ``scores``
            float32 [n_rows, n_items, n_options]; gold int [n_items]).

    Returns:
        one row per (phase, layer, sigma2): accuracy, acc_low, acc_high, mean_dm, dm_low,
        dm_high, drop, drop_low, drop_high, mcnemar_p, n_draws, n_items.
    """
    rows = []
    table = table.reset_index(drop=True)
    for (phase, layer), rows_of_layer in table.groupby(["phase", "layer"], sort=False):
        clean_mask = (table["phase"] == phase) & (table["layer"] == layer) & (table["sigma2"] == 0)
        clean_correct, _ = _per_item(table, scores, gold, clean_mask) if clean_mask.any() else (None, None)
        clean_first = metrics.correct(scores[clean_mask.to_numpy().nonzero()[0][0]], gold) if clean_mask.any() else None
        for variance, group in rows_of_layer.groupby("sigma2", sort=True):
            mask = table.index.isin(group.index)
            correct, dm = _per_item(table, scores, gold, mask)
            acc = stats.bootstrap_ci(correct, n_resamples=n_resamples, seed=seed)
            mdm = stats.bootstrap_ci(dm, n_resamples=n_resamples, seed=seed)
            row = {"phase": phase, "layer": int(layer), "sigma2": float(variance), "accuracy": acc.estimate,
                   "acc_low": acc.low, "acc_high": acc.high, "mean_dm": mdm.estimate, "dm_low": mdm.low,
                   "dm_high": mdm.high, "drop": np.nan, "drop_low": np.nan, "drop_high": np.nan,
                   "mcnemar_p": np.nan, "n_draws": len(group), "n_items": len(gold)}
            if clean_correct is not None:
                drop = stats.paired_bootstrap_ci(clean_correct, correct, n_resamples=n_resamples, seed=seed)
                first = metrics.correct(scores[group.index[0]], gold)
                row.update({"drop": drop.estimate, "drop_low": drop.low, "drop_high": drop.high,
                            "mcnemar_p": stats.mcnemar_test(clean_first, first).pvalue})
            rows.append(row)
    return pd.DataFrame(rows)


def phase_drop(table: pd.DataFrame, scores: np.ndarray, gold: np.ndarray, phase: str, sigma2: float,
               n_resamples: int = 2000, seed: int = 0) -> stats.Interval | None:
    """Accuracy drop (clean - noisy) of one phase at one variance, pooled over its perturbed layers and draws.

    Per item, correctness is averaged over the phase's layers and draws, at σ² = 0 and at
    ``sigma2``; the interval is the paired item bootstrap. None when the phase or the
    variance is absent.
    """
    in_phase = (table["phase"] == phase).to_numpy()
    noisy = in_phase & np.isclose(table["sigma2"].to_numpy(), sigma2)
    clean = in_phase & (table["sigma2"].to_numpy() == 0)
    if not noisy.any() or not clean.any():
        return None
    clean_correct, _ = _per_item(table, scores, gold, clean)
    noisy_correct, _ = _per_item(table, scores, gold, noisy)
    return stats.paired_bootstrap_ci(clean_correct, noisy_correct, n_resamples=n_resamples, seed=seed)


@verdict_rule
def verdict_c6(table: pd.DataFrame, scores: np.ndarray, gold: np.ndarray, n_resamples: int = 2000,
               seed: int = 0) -> Verdict:
    """C6: the Silent Phase degrades already at σ² ≈ 0.02 while the Decisive Phase holds at σ² ≈ 0.1.

    Rule (fixed in advance). Let s = the largest positive σ² ≤ 0.02 in the sweep and d = the
    largest σ² of the sweep. The drop of a phase at a variance is clean - noisy accuracy,
    pooled over its perturbed layers and draws, with a 95% paired item-bootstrap interval.
    Supported when the Silent-Phase drop at s is significant (interval above 0) and the
    Decisive-Phase drop at d is not (interval reaches 0 or below). Not supported when the
    Decisive drop at d is significant, or the Silent Phase holds at s: its drop's interval lies
    at or below ``DROP_TOLERANCE`` (0.05), the margin within which C4 says a removal "costs
    little". Inconclusive when the Silent drop is neither significant nor bounded by that
    margin, when a phase has no perturbed layer, the sweep lacks a positive σ² ≤ 0.02, or the
    intact model is not above chance (its accuracy interval reaches the best constant answer),
    since then no drop can show.

    Args:
        table, scores, gold: ``Experiments.noise_sweep()``.

    Returns:
        Verdict; statistic = the Silent-Phase drop at s, with its interval; n = items.
    """
    n_items = len(gold)
    variances = sorted(set(float(v) for v in table["sigma2"]))
    small = [v for v in variances if 0 < v <= SILENT_SIGMA2 + 1e-12]
    phases = set(table["phase"])
    statistic = "Silent-Phase accuracy drop"
    if not small or "silent" not in phases or "decisive" not in phases:
        missing = [] if small else [f"no positive sigma^2 <= {SILENT_SIGMA2}"]
        missing += [f"no {p} layer perturbed" for p in ("silent", "decisive") if p not in phases]
        return Verdict("C6", "inconclusive", statistic, None, n=n_items,
                       text=f"The sweep cannot test C6: {'; '.join(missing)} (a network without a transition "
                            f"layer has no Decisive Phase).")
    s, d = small[-1], variances[-1]
    clean = table["sigma2"].to_numpy() == 0
    clean_correct, _ = _per_item(table, scores, gold, clean)
    clean_acc = stats.bootstrap_ci(clean_correct, n_resamples=n_resamples, seed=seed)
    chance = metrics.chance_accuracy(gold, scores.shape[-1])
    silent = phase_drop(table, scores, gold, "silent", s, n_resamples, seed)
    decisive = phase_drop(table, scores, gold, "decisive", d, n_resamples, seed)
    statistic = f"Silent-Phase accuracy drop at sigma^2={s:g}"
    numbers = (f"Silent-Phase drop at sigma^2={s:g}: {silent.text()}; "
               f"Decisive-Phase drop at sigma^2={d:g}: {decisive.text()} (95% paired item bootstrap, {n_items} items).")
    if not lies_above(clean_acc.ci, chance):
        return Verdict("C6", "inconclusive", statistic, silent.estimate, ci=silent.ci, n=n_items,
                       text=f"The intact model's accuracy {clean_acc.text()} is not above the best constant answer "
                            f"({chance:.3f}), so noise has nothing to degrade. {numbers}")
    silent_degrades, decisive_degrades = lies_above(silent.ci, 0), lies_above(decisive.ci, 0)
    if decisive_degrades:
        status, why = "not supported", "the Decisive Phase also degrades significantly at the largest variance."
    elif silent_degrades:
        status, why = "supported", "the Silent Phase degrades significantly at the small variance while the " \
                                   "Decisive Phase holds at the largest."
    elif lies_below(silent.ci, DROP_TOLERANCE, strict=False):
        status, why = "not supported", (f"the Silent Phase holds at the small variance: its drop's interval lies at "
                                        f"or below {DROP_TOLERANCE:g}, the margin within which C4 calls a loss little.")
    else:
        status, why = "inconclusive", (f"the Silent drop is not significant, but its interval reaches above "
                                       f"{DROP_TOLERANCE:g}: a loss larger than C4's margin is not ruled out.")
    return Verdict("C6", status, statistic, silent.estimate, ci=silent.ci, n=n_items,
                   text=f"{numbers} {status.capitalize()}: {why}")


# ------------------------------------------------------------------------------------------------
# C7: recovery by fine-tuning
# ------------------------------------------------------------------------------------------------

#: Beyond this fraction of layers removed the paper finds that recovery plateaus.
PLATEAU_FRACTION = 0.4
#: A plateau: deeper pruning adds less than this share of the DM recovered at PLATEAU_FRACTION.
PLATEAU_MARGIN = 0.5


def recovery_table(table: pd.DataFrame, arrays: Mapping[str, np.ndarray], n_resamples: int = 2000,
                   seed: int = 0) -> pd.DataFrame:
    """Accuracy and DM before / after fine-tuning per pruning fraction, with item-bootstrap intervals.

    Args:
        table, arrays: ``Experiments.finetune_recovery()`` (scores_before / scores_after float32
            [n_fractions, n_items, n_options], gold int [n_items]).

    Returns:
        one row per (fraction, when in {before, after}): fraction_removed, n_removed, n_kept, when,
        accuracy, acc_low, acc_high, mean_dm, dm_low, dm_high, recovered_dm (after - before mean DM,
        paired item bootstrap: rec_low, rec_high; on both rows), n_items.
    """
    gold = arrays["gold"]
    rows = []
    for index, fraction in enumerate(table["fraction_removed"]):
        dm = {when: metrics.decision_margin(arrays[f"scores_{when}"][index], gold) for when in ("before", "after")}
        recovered = stats.paired_bootstrap_ci(dm["after"], dm["before"], n_resamples=n_resamples, seed=seed)
        for when in ("before", "after"):
            correct = metrics.correct(arrays[f"scores_{when}"][index], gold)
            acc = stats.bootstrap_ci(correct, n_resamples=n_resamples, seed=seed)  # fraction correct
            mdm = stats.bootstrap_ci(dm[when], n_resamples=n_resamples, seed=seed)
            rows.append({"fraction_removed": float(fraction), "n_removed": int(table["n_removed"].iloc[index]),
                         "n_kept": int(table["n_kept"].iloc[index]), "when": when, "accuracy": acc.estimate,
                         "acc_low": acc.low, "acc_high": acc.high, "mean_dm": mdm.estimate, "dm_low": mdm.low,
                         "dm_high": mdm.high, "recovered_dm": recovered.estimate, "rec_low": recovered.low,
                         "rec_high": recovered.high, "n_items": len(gold)})
    return pd.DataFrame(rows)


def _recovered(arrays: Mapping[str, np.ndarray], index: int) -> np.ndarray:
    """Per-item recovered DM (after - before) at one fraction: float [n_items]."""
    gold = arrays["gold"]
    return (metrics.decision_margin(arrays["scores_after"][index], gold)
            - metrics.decision_margin(arrays["scores_before"][index], gold))


def recovery_gain(table: pd.DataFrame, arrays: Mapping[str, np.ndarray], threshold: float = PLATEAU_FRACTION,
                  n_resamples: int = 2000, seed: int = 0) -> dict[str, Any] | None:
    """Recovered DM beyond ``threshold`` minus recovered DM at the deepest fraction up to it.

    Returns:
        None when there is no fraction on one side of the threshold; else dict with reference
        (fraction <= threshold used), beyond (fraction > threshold with the largest recovered
        DM), reference_recovery (Interval of mean recovered DM at the reference, item bootstrap)
        and gain (Interval of the difference, paired item bootstrap).
    """
    fractions = table["fraction_removed"].to_numpy(dtype=float)
    at_most = np.nonzero(fractions <= threshold + 1e-9)[0]
    beyond = np.nonzero(fractions > threshold + 1e-9)[0]
    if not at_most.size or not beyond.size:
        return None
    reference = int(at_most[np.argmax(fractions[at_most])])
    best = int(beyond[np.argmax([_recovered(arrays, i).mean() for i in beyond])])
    return {"reference": float(fractions[reference]), "beyond": float(fractions[best]),
            "reference_recovery": stats.bootstrap_ci(_recovered(arrays, reference), n_resamples=n_resamples, seed=seed),
            "gain": stats.paired_bootstrap_ci(_recovered(arrays, best), _recovered(arrays, reference),
                                              n_resamples=n_resamples, seed=seed)}


@verdict_rule
def verdict_c7(table: pd.DataFrame, arrays: Mapping[str, np.ndarray], threshold: float = PLATEAU_FRACTION,
               n_resamples: int = 2000, seed: int = 0, model: str | None = None) -> Verdict:
    """C7: the DM recovered by fine-tuning stops growing beyond ~40% of layers pruned.

    Rule (fixed in advance). Recovered DM at a fraction = mean over items of DM after minus
    DM before fine-tuning. Reference = the largest fraction ≤ ``threshold`` (0.4); gain =
    the largest recovered DM at any fraction > threshold minus recovered DM at the
    reference, with a 95% paired item-bootstrap interval. Supported when fine-tuning does
    recover DM at the reference (interval above 0) and the gain's whole interval lies below
    ``PLATEAU_MARGIN`` (one half) of the reference recovery: deeper pruning adds less than half
    of what was recovered by the threshold, a plateau shown by the data rather than assumed
    from a non-significant gain. Not supported when the gain is significantly positive
    (recovery keeps growing with depth removed). Inconclusive when no fraction lies on one
    side of the threshold, fine-tuning recovers no DM at the reference (no recovery, so no
    plateau to see), or the gain's interval is too wide to tell a plateau from growth.

    Args:
        table, arrays: ``Experiments.finetune_recovery(model)``; model: the model they fine-tuned (the verdict is
            recorded per model).

    Returns:
        Verdict; statistic = the gain beyond the threshold, with its interval; n = items.
    """
    n_items = len(arrays["gold"])
    statistic = f"recovered-DM gain beyond {threshold:.0%} pruned"
    gain = recovery_gain(table, arrays, threshold, n_resamples, seed)
    if gain is None:
        fractions = ", ".join(f"{f:.0%}" for f in table["fraction_removed"])
        return Verdict("C7", "inconclusive", statistic, None, n=n_items, model=model,
                       text=f"Fine-tuned fractions ({fractions}) do not lie on both sides of {threshold:.0%}, so "
                            f"no plateau can be tested.")
    g, ref = gain["gain"], gain["reference_recovery"]
    numbers = (f"Recovered DM at {gain['reference']:.0%} pruned: {ref.text()}; "
               f"gain at {gain['beyond']:.0%} over it: {g.text()} (95% item bootstrap, {n_items} items).")
    if lies_above(g.ci, 0):
        return Verdict("C7", "not supported", statistic, g.estimate, ci=g.ci, n=n_items, model=model,
                       text=f"{numbers} Recovery keeps growing beyond {threshold:.0%}: no plateau.")
    if not lies_above(ref.ci, 0):
        return Verdict("C7", "inconclusive", statistic, g.estimate, ci=g.ci, n=n_items, model=model,
                       text=f"{numbers} Fine-tuning recovers no significant DM at {gain['reference']:.0%}, so a "
                            f"plateau cannot be told from no recovery at all.")
    margin = PLATEAU_MARGIN * ref.estimate
    if not lies_below(g.ci, margin):
        return Verdict("C7", "inconclusive", statistic, g.estimate, ci=g.ci, n=n_items, model=model,
                       text=f"{numbers} The gain is not significant, but its interval reaches {g.high:.3f}, not "
                            f"below {PLATEAU_MARGIN:.0%} of the recovery at {gain['reference']:.0%} ({margin:.3f}): "
                            f"too few items to tell a plateau from further growth.")
    return Verdict("C7", "supported", statistic, g.estimate, ci=g.ci, n=n_items, model=model,
                   text=f"{numbers} Recovery at {threshold:.0%} is significant and grows by less than "
                        f"{PLATEAU_MARGIN:.0%} of it ({margin:.3f}) beyond: it plateaus.")
