"""The mechanism behind C5, tested inside every pruned network: does Silent pruning remove the decision transition
(C5b), and does it remove it beyond the accuracy it costs (C5c)?

Inputs are :func:`claims.pruned_transitions.phase_networks` tables: one row per network of the phase-targeted traces
of one (model, task), k = 1 .. K random layers removed inside one phase of the intact network, one trace per seed.
Rules, fixed before any data is seen (intervals: 95%):

- **C5b, the mechanism** (amended rule, 2026-12-06). At each k, the share of seeds whose pruned network *has a
  transition of its own*, per phase; one-sided Fisher exact test (Silent has one less often than Decisive), Holm over
  k. Supported: at some k the test rejects (Holm-adjusted p < ``ALPHA``) and at least half of the Decisive-pruned
  networks have a transition at that k. Not supported: no k rejects and, at every k, the Silent share is at least 1/2
  or at least the Decisive share. Otherwise inconclusive, and when the intact network has no transition (no Silent
  Phase to prune).
- **C5b as first registered** (:func:`verdict_c5b_registered`, kept beside the amended rule and shown with it).
  The same test, but a network counted as keeping the transition only when its readout has one *and* its final
  accuracy is not significantly below the intact network's (paired BCa item bootstrap of intact - pruned final
  accuracy: the interval's lower bound at or below 0). Amended because that accuracy clause re-tests C5 (the
  accuracy cost of Silent pruning) and lets the verdict on the transition pass or fail for a reason that is not
  the transition: the share of networks that keep their accuracy is reported beside it, labelled as C5's cost.
- **C5c, the transition beyond the accuracy cost** (registered 2026-12-07, before the settings of the verdict matrix
  were computed: its first test on unseen data is there). A network has a transition only where its readout's
  accuracy rises above chance, so a network whose accuracy falls to chance has none by definition; Silent layers
  cost more accuracy than Decisive ones (C5, P1b), so C5b alone cannot tell "Silent pruning removes the transition"
  from "Silent pruning costs more accuracy and the transition goes with it". C5c compares the phases **at the same
  final accuracy**: over every phase-targeted network of one (model, task) with k >= 1, the logistic regression
  logit P(has a transition) = b0 + b_Silent * Silent + b_acc * final accuracy (Silent: 1 for a Silent-pruned
  network, 0 for a Decisive-pruned one; final accuracy as a fraction), fitted with Firth's penalty
  (``stats.firth_logit``: finite where the classes are separated, as accuracy nearly separates them). Statistic:
  b_Silent, the log odds of having a transition for a Silent- against a Decisive-pruned network of equal final
  accuracy; its interval the percentile bootstrap over traces, resampled within each phase (a trace's networks share
  its layers). Supported: the interval lies below 0 (at equal accuracy, Silent-pruned networks keep fewer
  transitions). Not supported: the interval lies above :data:`C5C_MARGIN` = log(1/4) (it excludes any effect that
  would matter: the mechanism says Silent pruning *prevents* the transition, an effect on the odds far beyond a
  factor of 4, and an interval above log(1/4) excludes that Silent pruning even quarters the odds). Supported is checked
  first: an interval below 0 that also lies above the margin is a small effect that is there. Why log(1/4) and not
  the log(1/2) first proposed: before any real network was fitted, synthetic settings of this size (10-20 seeds x 6
  k x 2 phases, a steep accuracy dependence and no phase effect) gave 95% intervals about 2 log-odds wide, so a
  margin of log(1/2) could be passed only by an estimate above about +0.3, i.e. practically never where the phases
  are alike (tests/claims/test_c5c.py has one such setting). Inconclusive otherwise, and when the intact network has no
  transition, a phase has no networks, or every network (or none) has a transition. Why a regression and not matched
  pairs: it uses every network, treats accuracy as the continuous quantity it is, and needs no matching caliper to be
  chosen; its limits: the logit is linear in accuracy, which the chapter's figure lets a reader check against the
  networks themselves; and where accuracy separates networks with and without a transition almost exactly, only the
  networks near that accuracy inform b_Silent, its interval is wide and C5c is inconclusive (the data then cannot
  tell the accounts apart). What a "not supported" means: accuracy lies on the causal path of both accounts (the paper's:
  no transition, so no accuracy), so C5c asks only whether the transition is lost *more* than the accuracy lost
  explains; it cannot refute the mechanism, only say that the transition data add nothing to the accuracy data.
- **C5c amended** (2026-12-07, the same day, before any setting of the verdict matrix had a C5c verdict; the first rule
  is :func:`verdict_c5c_registered`, shown beside it). "At equal final accuracy" needs networks of both phases at
  equal accuracy. Where the phases do not overlap in accuracy (say, every Silent-pruned network near chance without a
  transition, every Decisive-pruned one high with one), phase and accuracy separate the outcome together, Firth's
  penalty rather than the data splits the effect between b_Silent and b_acc, every resample keeps the separation, and
  the first rule could call C5c supported on exactly the confound it was registered to remove. The amended rule is
  the first one, but inconclusive unless at least :data:`C5C_MIN_OVERLAP` = 5 networks of *each* phase have their
  final accuracy inside the range the two phases share ([the larger of the two phases' lowest accuracies, the
  smaller of their highest]), and when the fit on every network is not identified. The share of bootstrap fits that
  were identified is reported in its text.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from layercollapse.claims.pruned_transitions import class_counts
from layercollapse.claims.transition import ALPHA
from layercollapse.claims.verdicts import Verdict, lies_above, lies_below, verdict_rule
from layercollapse.measures import stats
from scipy.special import expit
from scipy.stats import binomtest, fisher_exact

__all__ = [
    "C5C_MARGIN",
    "C5C_MIN_OVERLAP",
    "COUNTED",
    "retention_table",
    "retention_summary",
    "prevention_text",
    "verdict_c5b",
    "verdict_c5b_registered",
    "TransitionOdds",
    "transition_odds",
    "transition_curves",
    "verdict_c5c",
    "verdict_c5c_registered",
    "c5c_account",
]

#: C5c (amended): networks of each phase that must lie in the accuracy range both phases share.
C5C_MIN_OVERLAP = 5

#: C5c's margin (log odds): "not supported" needs b_Silent's interval above log(1/4), i.e. to exclude that Silent
#: pruning quarters (or worse) the odds of keeping a transition at equal final accuracy. Fixed 2026-12-07 (why not
#: log(1/2): module docstring).
C5C_MARGIN = math.log(0.25)


def retention_summary(tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """:func:`retention_table` of several tasks in one table for people: task, k, silent / decisive ("n of N" with a
    transition), the shares' intervals, p_holm_transition, the outcomes per phase, accuracy ("Silent n/N / Decisive
    n/N" keep their accuracy: C5's cost), registered (the first rule's counts) and p_holm_registered."""
    frames = []
    for task, table in tables.items():
        if not len(table):
            continue
        frames.append(table.assign(
            task=task,
            silent=[f"{a} of {n}" for a, n in zip(table["transition_silent"], table["n_silent"])],
            decisive=[f"{a} of {n}" for a, n in zip(table["transition_decisive"], table["n_decisive"])],
            accuracy=[f"{a}/{n} / {b}/{m}" for a, n, b, m in zip(table["accuracy_silent"], table["n_silent"],
                                                                  table["accuracy_decisive"], table["n_decisive"])],
            registered=[f"{a} / {b}" for a, b in zip(table["registered_silent"], table["registered_decisive"])]))
    if frames:
        return pd.concat(frames, ignore_index=True)
    columns = ["task", "k", "silent", "decisive", "accuracy", "registered", "outcomes_silent", "outcomes_decisive",
               *(f"{name}_{phase}_{end}" for name in ("share_transition",) for phase in ("silent", "decisive")
                 for end in ("low", "high")), "p_holm_transition", "p_holm_registered"]
    return pd.DataFrame(columns=columns)  # no phase-targeted networks: the table says so by having no rows




def prevention_text(table: pd.DataFrame) -> str:
    """At which k most Silent- or Decisive-pruned networks have no transition of their own (``retention_table``
    rows), as a sentence for the chapter."""
    if not len(table):
        return "Without a transition in the intact network there are no two phases to compare."
    parts = []
    for phase in ("silent", "decisive"):
        lost = table.loc[table[f"share_transition_{phase}"] < 0.5, "k"].astype(int).tolist()
        name = phase.capitalize()
        parts.append(f"{name} pruning leaves most networks without a transition at k = {', '.join(map(str, lost))}"
                     if lost else f"{name} pruning leaves a transition in at least half of the networks at every k")
    return "; ".join(parts) + f" (k = 1..{int(table['k'].max())})."



#: The columns of :func:`retention_table` each count is taken from, by rule.
COUNTED = {"transition": "has_transition", "registered": "keeps_transition_registered", "accuracy": "retains_accuracy"}


def _share_columns(count: int, n: int, name: str, confidence: float) -> dict[str, float]:
    interval = binomtest(count, n).proportion_ci(confidence, method="exact")
    return {f"{name}": count, f"n_{name.split('_', 1)[1]}": n, f"share_{name}": count / n,
            f"share_{name}_low": interval.low, f"share_{name}_high": interval.high}


def retention_table(networks: pd.DataFrame, confidence: float = 0.95, alpha: float = ALPHA) -> pd.DataFrame:
    """Per k >= 1: how many Silent- and Decisive-pruned networks have a transition, and the tests of C5b.

    Args:
        networks: :func:`phase_networks` of ``{"Silent": ..., "Decisive": ...}`` (one model and task).
    Returns:
        k; for each count c of :data:`COUNTED` ("transition": a transition of its own, the amended C5b;
        "registered": a transition and the accuracy retained, the first registered C5b; "accuracy": the accuracy
        retained, C5's cost) and phase: ``{c}_{phase}`` (networks), ``n_{phase}``, ``share_{c}_{phase}`` with
        Clopper-Pearson ``_low`` / ``_high``; for the two C5b counts, ``p_{c}`` (one-sided Fisher exact: Silent
        less often than Decisive), ``p_holm_{c}`` and ``reject_{c}`` (Holm over k); and ``outcomes_{phase}``,
        the networks per outcome (:data:`OUTCOMES`), as text.
    """
    phases = ("silent", "decisive")
    present = set(networks["phase"].str.lower()) if len(networks) else set()
    if not set(phases) <= present:  # a phase without layers: nothing to compare
        return pd.DataFrame(columns=["k"])
    rows = []
    pruned = networks[networks["k"] >= 1]
    for k in sorted(pruned["k"].unique()):
        at_k = pruned[pruned["k"] == k]
        if set(at_k["phase"].str.lower()) != set(phases):
            break  # the shorter phase's traces end here
        row = {"k": int(k)}
        for phase in phases:
            group = at_k[at_k["phase"].str.lower() == phase]
            for count, column in COUNTED.items():
                row |= _share_columns(int(group[column].sum()), len(group), f"{count}_{phase}", confidence)
            row[f"outcomes_{phase}"] = class_counts(group["outcome"])
        for count in ("transition", "registered"):
            table = [[row[f"{count}_silent"], row["n_silent"] - row[f"{count}_silent"]],
                     [row[f"{count}_decisive"], row["n_decisive"] - row[f"{count}_decisive"]]]
            row[f"p_{count}"] = float(fisher_exact(table, alternative="less").pvalue)
        rows.append(row)
    frame = pd.DataFrame(rows)
    for count in ("transition", "registered"):
        if len(frame):
            frame[f"reject_{count}"], frame[f"p_holm_{count}"] = stats.holm(frame[f"p_{count}"].to_numpy(), alpha)
    return frame


def _decide_c5b(table: pd.DataFrame, count: str) -> tuple[str, pd.Series]:
    """(status, deciding row) of the C5b test on ``count`` ("transition" or "registered"): module docstring."""
    deciding = table[table[f"reject_{count}"] & (table[f"share_{count}_decisive"] >= 0.5)]
    if len(deciding):
        return "supported", deciding.iloc[0]
    holds = ((table[f"share_{count}_silent"] >= 0.5)
             | (table[f"share_{count}_silent"] >= table[f"share_{count}_decisive"])).all()
    return ("not supported" if holds else "inconclusive"), table.iloc[-1]


def _c5b_verdict(table: pd.DataFrame | None, phases, networks: pd.DataFrame, count: str, statistic: str,
                 what: str) -> Verdict:
    model, task = (networks["model"].iloc[0], networks["task"].iloc[0]) if len(networks) else (None, None)
    where = f"{model} on {task}" if model else "The main model"
    if phases.layer is None or table is None or not len(table):
        return Verdict("C5b", "inconclusive", statistic, None, n=0, model=model, task=task,
                       text=f"{where} has no transition (or no layers in one phase), so there is no phase to prune "
                            "and C5b cannot be tested.")
    status, row = _decide_c5b(table, count)
    k_max = int(table["k"].max())
    per_k = "; ".join(f"k = {int(r['k'])}: {int(r[f'{count}_silent'])}/{int(r['n_silent'])} Silent, "
                      f"{int(r[f'{count}_decisive'])}/{int(r['n_decisive'])} Decisive" for _, r in table.iterrows())
    text = (f"{where}, k = 1..{k_max} random layers removed inside one phase ({int(row['n_silent'])} seeds per "
            f"phase): {what} in {per_k}. At k = {int(row['k'])} the one-sided Fisher exact test gives Holm-adjusted "
            f"p = {row[f'p_holm_{count}']:.3g}.")
    return Verdict("C5b", status, statistic, float(row[f"share_{count}_silent"]), text,
                   ci=(float(row[f"share_{count}_silent_low"]), float(row[f"share_{count}_silent_high"])),
                   n=int(row["n_silent"]), p=float(row[f"p_holm_{count}"]), model=model, task=task)


@verdict_rule
def verdict_c5b(networks: pd.DataFrame, phases, table: pd.DataFrame | None = None,
                alpha: float = ALPHA) -> Verdict:
    """C5b (amended rule): Silent-pruned networks lose their own transition, Decisive-pruned ones keep it (module
    docstring); one verdict per (model, task).

    Args:
        networks: :func:`phase_networks` of the Silent and Decisive traces of one model and task.
        table: ``retention_table(networks)``; computed here when None.
    """
    table = retention_table(networks, alpha=alpha) if table is None and len(networks) else table
    outcomes = ""
    if table is not None and len(table):
        status, row = _decide_c5b(table, "transition")
        outcomes = (f" What pruning did to the transition at k = {int(row['k'])}: Silent {row['outcomes_silent']}; "
                    f"Decisive {row['outcomes_decisive']}.")
    verdict = _c5b_verdict(table, phases, networks, "transition",
                           "share of Silent-pruned networks with a transition of their own",
                           "the pruned network's own readout has a transition")
    return dataclasses.replace(verdict, text=verdict.text + outcomes)


@verdict_rule
def verdict_c5b_registered(networks: pd.DataFrame, phases, table: pd.DataFrame | None = None,
                           alpha: float = ALPHA) -> Verdict:
    """C5b as first registered (amended, module docstring): "keeps the transition" also required the final accuracy
    not to drop significantly. Kept to be shown beside the amended rule, never recorded in the ledger."""
    table = retention_table(networks, alpha=alpha) if table is None and len(networks) else table
    return _c5b_verdict(table, phases, networks, "registered",
                        "share of Silent-pruned networks that keep the transition (first registered rule)",
                        "the pruned network keeps a transition and its accuracy")




# ------------------------------------------------------------------------------------------ C5c


@dataclass(frozen=True)
class TransitionOdds:
    """C5c's logistic fit of one (model, task): logit P(has a transition) = b0 + b_Silent Silent + b_acc accuracy.

    Attributes:
        params: (b0, b_Silent, b_acc), the Firth fit on every network (log odds; b_acc per unit of accuracy).
        silent, accuracy: b_Silent and b_acc with their percentile bootstrap intervals over traces within phases.
        draws: float64 [n_resamples, 3], the bootstrap fits (NaN where a resample's fit is not identified).
        n_traces, n_networks, n_with_transition: traces, networks (k >= 1) and networks with a transition of their own.
        accuracy_range: (lowest, highest) final accuracy of the networks (where the fitted curves are drawn).
        shared_range: the final accuracies both phases reach, (the larger of their lowest, the smaller of their
            highest); empty (low > high) where the phases do not overlap.
        n_shared: (Silent, Decisive) networks whose final accuracy lies inside ``shared_range``.
        model, task: the setting.
    """

    params: tuple[float, float, float]
    silent: stats.Interval
    accuracy: stats.Interval
    draws: np.ndarray
    n_traces: int
    n_networks: int
    n_with_transition: int
    accuracy_range: tuple[float, float]
    shared_range: tuple[float, float] = (0.0, 1.0)
    n_shared: tuple[int, int] = (0, 0)
    model: str | None = None
    task: str | None = None

    @property
    def both_outcomes(self) -> bool:
        """Some networks have a transition and some have none (else the fit says nothing)."""
        return 0 < self.n_with_transition < self.n_networks

    @property
    def identified(self) -> float:
        """Share of the bootstrap fits that were identified (the others: a resample where accuracy or the phase does
        not vary)."""
        return float(np.isfinite(self.draws).all(axis=1).mean()) if len(self.draws) else 0.0


def _c5c_rows(networks: pd.DataFrame) -> pd.DataFrame:
    pruned = networks[(networks["k"] >= 1) & networks["phase"].isin(["Silent", "Decisive"])]
    return pruned.assign(trace=pruned["phase"] + ":" + pruned["seed"].astype(str))


def transition_odds(networks: pd.DataFrame, n_resamples: int = 1000, seed: int = 0,
                    confidence: float = 0.95) -> TransitionOdds | None:
    """Fit C5c's model to the phase-targeted networks of one (model, task) and bootstrap it over traces within
    phases (module docstring); None when either phase has no pruned network.

    Args:
        networks: :func:`claims.pruned_transitions.phase_networks` rows (phase "Silent" / "Decisive", k, seed,
            has_transition, final_accuracy, model, task).
    """
    rows = _c5c_rows(networks)
    if set(rows["phase"]) != {"Silent", "Decisive"}:
        return None
    exog = np.column_stack([np.ones(len(rows)), rows["phase"].eq("Silent"),
                            rows["final_accuracy"]]).astype(np.float64)  # [n_networks, 3]
    endog = rows["has_transition"].to_numpy(dtype=np.float64)  # [n_networks]
    traces = list(dict.fromkeys(rows["trace"]))
    trace_of = rows["trace"].to_numpy()
    rows_of = {trace: np.flatnonzero(trace_of == trace) for trace in traces}
    phase_of = [trace.split(":", 1)[0] for trace in traces]

    def fit(chosen: np.ndarray) -> np.ndarray:
        try:
            return stats.firth_logit(exog[chosen], endog[chosen])
        except ValueError:  # a resample where accuracy or the phase does not vary: not identified
            return np.full(3, np.nan)

    params = fit(np.arange(len(rows)))
    draws = np.array([fit(np.concatenate([rows_of[traces[i]] for i in resample]))
                      for resample in stats.stratified_resamples(phase_of, n_resamples, seed)])  # [n_resamples, 3]
    low, high = stats.percentile_interval(draws, confidence)  # each [3]

    def interval(column: int) -> stats.Interval:
        return stats.Interval(float(params[column]), float(low[column]), float(high[column]), confidence,
                              "percentile (traces within phases)", len(traces))

    accuracy = rows["final_accuracy"]
    by_phase = accuracy.groupby(rows["phase"])
    shared = (float(by_phase.min().max()), float(by_phase.max().min()))
    inside = accuracy.between(*shared)
    n_shared = tuple(int(inside[rows["phase"] == phase].sum()) for phase in ("Silent", "Decisive"))
    return TransitionOdds(tuple(float(p) for p in params), interval(1), interval(2), draws, len(traces), len(rows),
                          int(endog.sum()), (float(accuracy.min()), float(accuracy.max())), shared, n_shared,
                          rows["model"].iloc[0], rows["task"].iloc[0])


def transition_curves(fit: TransitionOdds, n_points: int = 41, confidence: float = 0.95) -> pd.DataFrame:
    """C5c's fitted probability of a transition against final accuracy, per phase, over the networks' accuracy range:
    phase, final_accuracy, probability (the fit) and low / high (percentile band of the bootstrap fits)."""
    grid = np.linspace(*fit.accuracy_range, n_points)  # [n_points]
    frames = []
    for phase, silent in (("Silent", 1.0), ("Decisive", 0.0)):
        design = np.column_stack([np.ones(n_points), np.full(n_points, silent), grid])  # [n_points, 3]
        curves = expit(fit.draws @ design.T)  # [n_resamples, n_points]
        low, high = stats.percentile_interval(curves, confidence)
        frames.append(pd.DataFrame({"phase": phase, "final_accuracy": grid,
                                    "probability": expit(design @ np.array(fit.params)), "low": low, "high": high}))
    return pd.concat(frames, ignore_index=True)


def _c5c_untestable(fit: TransitionOdds | None, phases) -> str | None:
    """Why C5c cannot be tested on these networks at all (both rules), or None."""
    if phases.layer is None:
        return "the intact network has no transition, so no phase to prune"
    if fit is None:
        return "a phase has no pruned networks"
    if not fit.both_outcomes:
        return f"{'all' if fit.n_with_transition else 'none'} of its {fit.n_networks} pruned networks have a transition"
    return None


def _c5c_verdict(fit: TransitionOdds | None, phases, model: str | None, task: str | None,
                 undecided: str | None = None) -> Verdict:
    """The C5c verdict (the registered rule where ``undecided`` is None); ``undecided``: why the amended rule does
    not decide on these networks (:func:`_c5c_amendment`), said beside the fit's numbers where there are any."""
    model, task = (fit.model, fit.task) if fit is not None else (model, task)
    statistic = "b_Silent (log odds of a transition of its own, Silent- vs Decisive-pruned, at equal final accuracy)"
    where = f"{model} on {task}" if model else "The main model"
    why = _c5c_untestable(fit, phases)
    if why is None and undecided is not None and not np.isfinite(fit.silent.estimate):
        why = undecided  # no number to show
    if why is not None:
        return Verdict("C5c", "inconclusive", statistic, None, n=0 if fit is None else fit.n_traces, model=model,
                       task=task, text=f"{where}: C5c cannot be tested, because {why}.")
    silent = fit.silent
    if undecided is not None:
        status = "inconclusive"
    elif lies_below(silent.ci, 0):
        status = "supported"
    elif lies_above(silent.ci, C5C_MARGIN):
        status = "not supported"
    else:
        status = "inconclusive"
    low, high = fit.shared_range
    shared = (f"accuracy range both phases reach {low:.2f}–{high:.2f}, with {fit.n_shared[0]} Silent- and "
              f"{fit.n_shared[1]} Decisive-pruned networks in it" if low <= high else "the phases share no accuracy")
    text = (f"{where}: over {fit.n_networks} phase-targeted networks of {fit.n_traces} traces ({fit.n_with_transition} "
            f"with a transition of their own; final accuracy {fit.accuracy_range[0]:.2f}–{fit.accuracy_range[1]:.2f}; "
            f"{shared}), a Silent-pruned network's odds of having a transition are {math.exp(silent.estimate):.2f} "
            f"times a Decisive-pruned one's at equal final accuracy: b_Silent = {silent.text(2)} (Firth logistic "
            f"regression with final accuracy, b_acc = {fit.accuracy.text(1)} per unit of accuracy; percentile bootstrap "
            f"over traces within phases, {fit.identified:.0%} of the resampled fits identified). Supported below 0, "
            f"not supported above log(1/4) = {C5C_MARGIN:.2f}." + (f" Inconclusive here because {undecided}." if undecided else ""))
    return Verdict("C5c", status, statistic, silent.estimate, text, ci=silent.ci, n=fit.n_traces, model=model,
                   task=task)


@verdict_rule
def verdict_c5c(fit: TransitionOdds | None, phases, model: str | None = None, task: str | None = None) -> Verdict:
    """C5c (amended rule): at equal final accuracy, Silent-pruned networks have a transition of their own less often
    than Decisive-pruned ones, decided only where both phases have networks of equal accuracy (module docstring);
    one verdict per setting.

    Args:
        fit: :func:`transition_odds` of the setting's phase-targeted networks (None: a phase has none).
        phases: the intact network's phases on the task.
        model, task: the setting (taken from ``fit`` where it has them).
    """
    return _c5c_verdict(fit, phases, model, task, _c5c_amendment(fit))


def _c5c_amendment(fit: TransitionOdds | None) -> str | None:
    """Why the amended rule does not decide on a fit both rules could test (module docstring), or None."""
    if fit is None or not fit.both_outcomes:
        return None  # neither rule can test it (_c5c_untestable)
    if not np.isfinite(fit.silent.estimate):
        return "the fit on every network is not identified"
    if min(fit.n_shared) >= C5C_MIN_OVERLAP:
        return None
    low, high = fit.shared_range
    return (f"the phases barely overlap in final accuracy: {fit.n_shared[0]} Silent- and {fit.n_shared[1]} "
            f"Decisive-pruned networks lie in the range both reach" + (f" ({low:.2f}–{high:.2f})" if low <= high else "")
            + f", fewer than {C5C_MIN_OVERLAP} of each, so there are too few networks of equal accuracy to compare")


@verdict_rule
def verdict_c5c_registered(fit: TransitionOdds | None, phases, model: str | None = None,
                           task: str | None = None) -> Verdict:
    """C5c as first registered (amended, module docstring): no condition that the phases overlap in accuracy. Kept to
    be shown beside the amended rule, never recorded in the ledger."""
    return _c5c_verdict(fit, phases, model, task)


def c5c_account(verdict: Verdict) -> str:
    """The plain sentence that says which account the data support, for C5c's verdict on one setting."""
    if verdict.status == "supported":
        return "Silent pruning removes the transition beyond its accuracy cost."
    if verdict.status == "not supported":
        return ("The data show that Silent layers cost more accuracy, and the transition goes with the accuracy: at "
                "equal final accuracy the phases keep their transitions alike.")
    if verdict.value is None:
        return "There is nothing to compare: " + verdict.text.split("because ", 1)[-1]
    if " Inconclusive here because " in verdict.text:
        return "The data cannot tell the two accounts apart: " + verdict.text.split(" Inconclusive here because ", 1)[-1]
    return ("The data cannot tell the two accounts apart yet: at equal final accuracy the interval of the phase effect "
            "includes both no effect and an effect that would matter.")
