"""Pruning: schedules (one record each, in one registry), the loop that runs them with prefix caching, and the
resumable traces they leave.

Modules, each with one job: ``encoding`` (item sets tokenised and batched once), ``prefix`` (running pruned
networks from a remembered prefix; the intact pass shared between traces), ``statistics`` (Block Influence,
angular distance), ``schedules`` (the planners and the :class:`Schedule` registry), ``trace`` (the :class:`Trace`,
its spec, its checkpoints), ``engine`` (:func:`prune`, :func:`prune_seeds`), ``margins`` (how close each greedy
choice was).
"""

from layercollapse.pruning.engine import prune, prune_seeds, single_layer_removals
from layercollapse.pruning.prefix import IntactPrefixes, PrefixRunner
from layercollapse.pruning.schedules import (
    CRITERIA,
    SCHEDULES,
    PlanInputs,
    Schedule,
    get_schedule,
    register_schedule,
    schedule_labels,
)
from layercollapse.pruning.trace import NetworkIdentity, Trace, iter_traces, trace_spec

__all__ = ["prune", "prune_seeds", "single_layer_removals", "IntactPrefixes", "PrefixRunner", "CRITERIA",
           "SCHEDULES", "PlanInputs", "Schedule", "get_schedule", "register_schedule", "schedule_labels",
           "NetworkIdentity", "Trace", "iter_traces", "trace_spec"]
