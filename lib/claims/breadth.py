"""Which settings the study runs on: a candidate setting (a model scored one way on one task, ``profiles.Setting``)
qualifies for the pruning study by its intact network's layer-wise readout.

The rule (registered 2026-12-07, before any new candidate was measured; intervals: 95%):

- A candidate **qualifies** when the transition of its intact readout (the BRIEF's rule,
  ``measures.phases.phases_from_readout``: accuracy's band stays above chance from it on, and mean DM rises across
  it) is found in at least :data:`MIN_FOUND` = 95% of the item resamples (``TransitionResult.found_fraction``: the
  share of resamples in which the accuracy crossing is found; the DM clause is checked on the data, not per resample),
  and the accuracy gained across it (its *height*: accuracy after the last
  layer minus accuracy at the layer before the transition, per item, BCa item bootstrap:
  ``pruned_transitions.transition_summary``) has an interval whose lower bound lies above :data:`MIN_HEIGHT` = 0.10
  (ten accuracy points).
- Why these numbers: the pruning claims compare what removing layers of each phase does, so a setting needs two
  phases that are there in nearly every resample of its items (95%), and a transition high enough that losing it is
  measurable on the profile's items: at 200 items and chance 0.25 the standard error of accuracy is 0.03, so a gain
  whose interval clears 0.10 is at least three of them. Both numbers are the ones proposed when the study was
  planned, fixed before the candidates' readouts existed; the rule is never loosened after seeing them: a model with
  no qualifying setting is a finding, shown as such.
- What selection does to the claims: settings are chosen *for* having a transition, so C3 (a sharp transition) on
  them is partly by construction; the candidate table (every candidate measured, qualifying or not) is C3's evidence
  of breadth. The claims about pruning (C1, C4, C5, C5b, C5c, P1, P1b) are not selected on: the rule reads only the
  intact network.
- The main setting (the profile's main model on its main task) and the main model's other phase tasks are the study's
  main evidence and are studied whether or not they qualify; the decision-dynamics chapter's table says which
  settings qualified.
- What the rule does not ask, as registered: that both phases have layers. A transition at the first layer leaves no
  Silent Phase; such a setting would qualify and its phase claims be inconclusive by construction (none of the
  default profile's qualifying settings has one: their transitions are at layers 12-22).
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
from layercollapse.claims.pruned_transitions import LAYER_COLUMNS, transition_summary
from layercollapse.measures.phases import Readout

__all__ = ["MIN_FOUND", "MIN_HEIGHT", "qualifies", "why_not", "candidate_table"]

#: Share of item resamples in which the intact transition must be found.
MIN_FOUND = 0.95
#: Accuracy (fraction) the lower bound of the transition height's interval must exceed.
MIN_HEIGHT = 0.10


def qualifies(found: float, height_low: float | None) -> bool:
    """The rule (module docstring): transition found in >= :data:`MIN_FOUND` of the resamples and its height's lower
    bound above :data:`MIN_HEIGHT` (None: no transition)."""
    return found >= MIN_FOUND and height_low is not None and not pd.isna(height_low) and height_low > MIN_HEIGHT


def why_not(found: float, height_low: float | None) -> str:
    """Why a candidate does not qualify, in a few words ("" when it does)."""
    reasons = []
    if found < MIN_FOUND:
        reasons.append(f"transition in {found:.0%} of resamples (< {MIN_FOUND:.0%})")
    if height_low is None or pd.isna(height_low):
        if found >= MIN_FOUND:  # else the share above says it already
            reasons.append("no transition")
    elif height_low <= MIN_HEIGHT:
        reasons.append(f"height's lower bound {height_low:.3f} ≤ {MIN_HEIGHT:.2f}")
    return "; ".join(reasons)


def candidate_table(readouts: Mapping, confidence: float = 0.95, n_resamples: int = 1000,
                    seed: int = 0) -> pd.DataFrame:
    """Every candidate setting and whether it qualifies.

    Args:
        readouts: ``profiles.Setting`` -> the intact network's :class:`Readout` on it, in the order to list them.
    Returns:
        One row per setting: setting (its key), model, task, format, shots, then ``transition_summary``'s columns
        (layer with its interval, found, rise_layer, height and dm_height with intervals, final_accuracy, chance,
        n_layers, n_items), qualifies (bool) and why_not (the rule's reason, "" when it qualifies).
    """
    rows = []
    for setting, readout in readouts.items():
        row = {"setting": setting.key, "model": setting.model, "task": setting.task, "format": setting.format,
               "shots": setting.shots, **transition_summary(readout, confidence, n_resamples, seed)}
        row |= {"qualifies": qualifies(row["found"], row["height_low"]), "why_not": why_not(row["found"], row["height_low"])}
        rows.append(row)
    table = pd.DataFrame(rows)
    for name in LAYER_COLUMNS:
        if name in table:
            table[name] = table[name].astype("Int64")
    return table
