"""How close each greedy pruning choice was: every candidate's criterion, the margin to the runner-up, near ties.

Iterative Pruning removes, at each step, the layer whose removal leaves the best calibration criterion
(mean DM). When the best candidate and the runner-up differ by less than the criterion's own numerical
noise, the choice is fragile: run with another batch layout (token budget), on another machine, the
pruner could take the other branch. :func:`replay_candidates` re-evaluates every candidate of every step
of a stored trace through the planner's own code path (:func:`schedules.candidate_values`);
:func:`criterion_noise` measures how much the criterion moves with the token budget;
:func:`greedy_margins` puts both in one table.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from layercollapse.data.tasks import Item
from layercollapse.progress import progress_bar
from layercollapse.pruning.encoding import EncodedSet, encode_calibration
from layercollapse.pruning.prefix import PrefixRunner
from layercollapse.pruning.schedules import (
    CRITERIA,
    SCHEDULES,
    calibration_criterion,
    candidate_values,
    get_schedule,
)
from layercollapse.pruning.trace import Trace
from torch import nn

#: Token budgets (rows x padded length per batch) at which :func:`criterion_noise` evaluates the criterion:
#: one row per batch, the CPU default, and everything in one batch.
NOISE_BUDGETS = (128, 1024, 8192)


def _criterion(model: nn.Module, tokenizer, trace: Trace, calibration: Sequence[Item] | Sequence[str],
               shots: Sequence[Item], token_budget: int | None) -> tuple[Callable[[np.ndarray], float], EncodedSet]:
    """(the greedy ``trace``'s criterion function, the calibration set it reads), encoded as the pruner encodes them."""
    if not get_schedule(trace.schedule).greedy:
        greedy = [name for name, schedule in SCHEDULES.items() if schedule.greedy]
        raise ValueError(f"trace schedule '{trace.schedule}' is not greedy: only {', '.join(greedy)} choose among "
                         "candidates")
    encoded = encode_calibration(model, tokenizer, calibration, trace.spec["format"], trace.spec["task"],
                                 token_budget, shots=shots)
    return calibration_criterion(trace.spec["criterion"], encoded, calibration), encoded


def replay_candidates(model: nn.Module, tokenizer, trace: Trace, calibration: Sequence[Item] | Sequence[str], *,
                      shots: Sequence[Item] = (), token_budget: int | None = None,
                      progress: bool | str = False) -> np.ndarray:
    """Every candidate's criterion at every step of a greedy ``trace``: float64 [n_steps, n_layers].

    Row s holds, for each layer kept after step s - 1, the calibration criterion of the network without it
    (NaN: not a candidate; row 0 is NaN). ``calibration`` and ``shots`` are the trace's (its spec's
    ``calibration_ids`` and ``shot_ids``); the prefix of each step's network is remembered as the pruner does.
    """
    criterion, encoded = _criterion(model, tokenizer, trace, calibration, shots, token_budget)
    first = trace.spec.get("layers") or () if get_schedule(trace.schedule).layers == "first" else ()
    runner = PrefixRunner(model, encoded)
    runner.run(trace.kept_layers(0), remember=True)
    values = np.full((trace.n_steps, trace.n_layers), np.nan)
    for step in progress_bar(range(1, trace.n_steps), progress or "candidates", enabled=bool(progress)):
        candidates, found = candidate_values(runner, criterion, trace.kept_layers(step - 1), first)
        values[step, candidates] = found
    return values


def criterion_noise(model: nn.Module, tokenizer, trace: Trace, calibration: Sequence[Item] | Sequence[str],
                    steps: Sequence[int], *, shots: Sequence[Item] = (),
                    budgets: Sequence[int] = NOISE_BUDGETS) -> np.ndarray:
    """The calibration criterion of the networks after ``steps`` of ``trace``, at each token budget.

    Returns:
        float64 [n_steps, n_budgets]; the spread of a row (max - min) is the criterion's numerical noise
        for that network (0 in fp32 up to ~1e-5; in bf16 the batch layout moves it).
    """
    out = np.zeros((len(steps), len(budgets)))
    for column, budget in enumerate(budgets):
        criterion, encoded = _criterion(model, tokenizer, trace, calibration, shots, budget)
        runner = PrefixRunner(model, encoded, use_cache=False)
        for row, step in enumerate(steps):
            out[row, column] = criterion(runner.run(trace.kept_layers(step)))
    return out


def noise_probe_steps(n_steps: int, n_probes: int = 4) -> list[int]:
    """Steps whose networks :func:`criterion_noise` probes: the intact one and evenly spaced pruned ones."""
    return sorted({int(step) for step in np.linspace(0, max(n_steps - 2, 0), n_probes).round()})


def greedy_margins(trace: Trace, values: np.ndarray, noise: float) -> pd.DataFrame:
    """One row per greedy step: the chosen layer, the runner-up, the margin between them, and whether it is a near tie.

    Args:
        values: :func:`replay_candidates` of ``trace``, float64 [n_steps, n_layers].
        noise: the criterion's numerical noise (the largest spread of a :func:`criterion_noise` row).
    Returns:
        step, removed (the trace's choice), best (the replay's best candidate), runner_up, criterion_best,
        criterion_runner_up, margin (>= 0, in criterion units; NaN with a single candidate), near_tie
        (margin <= noise: an exact tie is one even where the noise is 0), replay_agrees (the replay's best
        is the trace's choice).
    """
    sign = CRITERIA[trace.spec["criterion"]]
    rows = []
    for step in range(1, trace.n_steps):
        candidates = np.flatnonzero(~np.isnan(values[step]))
        ranked = candidates[np.argsort(-sign * values[step, candidates], kind="stable")]  # best first; ties: lowest
        best = int(ranked[0])
        runner_up = int(ranked[1]) if len(ranked) > 1 else None
        margin = np.nan if runner_up is None else sign * (values[step, best] - values[step, runner_up])
        rows.append({"step": step, "removed": trace.removed[step][0], "best": best, "runner_up": runner_up,
                     "criterion_best": values[step, best],
                     "criterion_runner_up": np.nan if runner_up is None else values[step, runner_up],
                     "margin": margin, "near_tie": bool(margin <= noise), "replay_agrees": best == trace.removed[step][0]})
    return pd.DataFrame(rows)


def margins_summary(trace: Trace, margins: pd.DataFrame, noise: float) -> dict[str, object]:
    """One row for a table of models: how many greedy choices of ``trace`` were near ties, and where.

    Returns:
        model, n_choices (steps with a runner-up), n_near_ties, near_tie_steps (e.g. "3, 9"; None for none),
        noise, smallest_margin, median_margin, replay_agrees (every step).
    """
    contested = margins.dropna(subset=["margin"])
    return {"model": trace.spec.get("model"), "n_choices": len(contested),
            "n_near_ties": int(contested["near_tie"].sum()),
            "near_tie_steps": ", ".join(str(step) for step in contested.loc[contested["near_tie"], "step"]) or None,
            "noise": noise, "smallest_margin": float(contested["margin"].min()) if len(contested) else np.nan,
            "median_margin": float(contested["margin"].median()) if len(contested) else np.nan,
            "replay_agrees": bool(margins["replay_agrees"].all())}


def fragility_text(summaries: pd.DataFrame) -> str:
    """One sentence per model of :func:`margins_summary` rows: how many greedy choices were near ties, where, against
    which noise, and the smallest margin."""
    return " ".join(f"On {row.model}, {row.n_near_ties} of {row.n_choices} greedy choices were near ties"
                    + (f" (steps {row.near_tie_steps})" if row.n_near_ties else "")
                    + f", against a criterion noise of {row.noise:.4f}; the smallest margin is {row.smallest_margin:.4f}."
                    for row in summaries.itertuples())


def near_tie_points(trace: Trace, margins: pd.DataFrame, noise: float) -> pd.DataFrame:
    """The near-tie steps of ``trace`` as points on its accuracy curve: step, fraction_removed, accuracy,
    removed, runner_up, margin, noise, model (for ``plots.step_points``)."""
    ties = margins[margins["near_tie"]]
    steps = ties["step"].to_numpy(dtype=int)
    return pd.DataFrame({"step": steps, "fraction_removed": trace.fraction_removed[steps],
                         "accuracy": trace.accuracy()[steps], "removed": ties["removed"].to_numpy(),
                         "runner_up": ties["runner_up"].to_numpy(), "margin": ties["margin"].to_numpy(),
                         "noise": noise, "model": trace.spec.get("model")})
