"""The pruning loop: prune a model step by step with a schedule and score the evaluation items after every step.

:func:`prune_seeds` encodes the items once, plans each seed's trace from the schedule's record
(``schedules.SCHEDULES``) and runs it (``trace.run_plan``), sharing the evaluation prefix cache and the
intact network's pass between seeds (and, through :class:`~layercollapse.pruning.prefix.IntactPrefixes`,
between calls); :func:`prune` is one seed. :func:`single_layer_removals` is the first greedy step on its
own: every layer removed alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from layercollapse.data.prompts import check_format
from layercollapse.data.tasks import Item
from layercollapse.model.layers import n_layers as count_layers
from layercollapse.model.layers import validate_layer_indices
from layercollapse.pruning.encoding import EncodedSet, encode_calibration, encode_items
from layercollapse.pruning.prefix import IntactPrefixes, PrefixRunner, intact_key, memory_budget, plan_prefix_cache
from layercollapse.pruning.schedules import CRITERIA, PlanInputs, candidate_scores, get_schedule
from layercollapse.pruning.trace import Trace, extend_stored, run_plan, trace_spec
from layercollapse.storage.store import Store
from torch import nn


def _check_arguments(schedule: str, evaluation: Sequence[Item], calibration: Sequence[Item] | Sequence[str],
                     criterion: str, layers: Sequence[int] | None, n_total: int, format: str,
                     shots: Sequence[Item]) -> None:
    recipe = get_schedule(schedule)
    if not evaluation:
        raise ValueError("no evaluation items")
    if recipe.greedy and criterion not in CRITERIA:
        raise ValueError(f"Unknown criterion '{criterion}'; use one of {', '.join(CRITERIA)}")
    if recipe.calibration and not calibration:
        raise ValueError(f"schedule '{schedule}' needs calibration items (or passages)")
    passages = [entry for entry in calibration if isinstance(entry, str)]
    if passages and len(passages) != len(calibration):
        raise ValueError("calibration mixes items and passages")
    if recipe.greedy and (criterion == "lm_loss") != bool(passages):
        raise ValueError("criterion 'lm_loss' takes calibration passages (strings); 'dm' and 'acc' take items")
    shared = {entry.id for entry in calibration if isinstance(entry, Item)} & {item.id for item in evaluation}
    if shared:
        raise ValueError(f"calibration and evaluation items overlap ({len(shared)} shared, e.g. '{min(shared)}')")
    solved = {shot.id for shot in shots} & ({item.id for item in evaluation}
                                            | {entry.id for entry in calibration if isinstance(entry, Item)})
    if solved:
        raise ValueError(f"{len(solved)} solved example(s) are also evaluation or calibration items, e.g. '{min(solved)}'")
    if recipe.layers:
        if not layers:
            what = "the index range to remove from" if recipe.layers == "range" else "the layers to remove first"
            raise ValueError(f"schedule '{schedule}' needs layers ({what})")
        validate_layer_indices(layers, n_total, "range layer")


def _use_cache(model: nn.Module, cache: bool | str, sets: Mapping[str, EncodedSet]) -> dict[str, bool]:
    if cache != "auto":
        return {name: bool(cache) for name in sets}
    parameter = next(model.parameters())
    return plan_prefix_cache({name: encoded.n_tokens for name, encoded in sets.items()}, count_layers(model),
                             model.config.hidden_size, parameter.element_size(), memory_budget(parameter.device))


def prune(model: nn.Module, tokenizer, evaluation: Sequence[Item], schedule: str = "iterative", *, seed: int = 0,
          **options: Any) -> Trace:
    """Prune ``model`` step by step with ``schedule`` and score the evaluation items after every step: one
    :func:`prune_seeds` trace, whose keyword arguments (``calibration``, ``criterion``, ``layers``, ``n_remove``,
    ``format``, ``task``, ``split``, ``store``, ``cache``, ``token_budget``, ``readout``, ``shots``, ``progress``)
    ``options`` are.

    Args:
        seed: seed of ``random`` / ``random_in_range`` (numpy ``default_rng``).
    Returns:
        :class:`Trace`, with n_remove + 1 steps.
    """
    return prune_seeds(model, tokenizer, evaluation, schedule, (seed,), **options)[0]


def prune_seeds(
    model: nn.Module,
    tokenizer,
    evaluation: Sequence[Item],
    schedule: str,
    seeds: Sequence[int],
    *,
    calibration: Sequence[Item] | Sequence[str] = (),
    criterion: str = "dm",
    layers: Sequence[int] | None = None,
    n_remove: int | None = None,
    format: str = "letter",
    task: str | None = None,
    split: str | None = None,
    store: Store | None = None,
    cache: bool | str = "auto",
    token_budget: int | None = None,
    readout: bool = False,
    shots: Sequence[Item] = (),
    progress: bool | str = True,
    intact: IntactPrefixes | None = None,
) -> list[Trace]:
    """Prune ``model`` step by step with ``schedule`` and score the evaluation items after every step, once per seed,
    sharing the tokenised items and the prefix cache (:func:`prune`: one seed).

    ``random_in_range`` runs every step from the intact network's cached prefix, so the intact
    network runs once for all seeds instead of once per seed. Stored traces are returned as they are.

    Args:
        evaluation: items scored at every step (step 0 = the intact model).
        schedule: the name of a registered schedule (``schedules.SCHEDULES``).
        calibration: items (``dm``, ``acc``; BI and angular distance read their prompts) or
            passages (``lm_loss``; BI and angular distance then read the passages), disjoint
            from ``evaluation``. Unused by reverse / random schedules.
        criterion: greedy criterion of ``iterative`` and ``decisive_first``: "dm" (mean Decision Margin, default),
            "acc" (accuracy), "lm_loss" (mean next-token NLL of the passages, nats/token).
        seeds: seeds of ``random`` / ``random_in_range`` (numpy ``default_rng``), one trace each.
        layers: ``random_in_range``: original indices to remove from; ``decisive_first``: the layers
            removed first (greedily among themselves), before all others.
        n_remove: removal steps to run; default: until one layer is left
            (``random_in_range``: until the range is exhausted or one layer is left).
        format, task: prompt format and task template, as in ``scoring.score``.
        split: name of the items' split, recorded in the spec.
        store: when given, a stored trace with the same spec is returned as is; otherwise the run
            checkpoints every step there (a killed run resumes) and stores the trace.
        cache: prefix caching: True, False (recompute every subnetwork from the embeddings),
            or "auto" (cache what fits :func:`memory_budget`, see :func:`plan_prefix_cache`).
        token_budget: rows x padded length per batch (None: the device's default).
        readout: also record the logit-lens readout of every pruned network (``Trace.readout_at``):
            the read positions of each layer run by the evaluation pass are unembedded, nothing else
            is run again (cost: ``benchmarks/readout_along_traces.py``).
        shots: letter format: solved examples prepended to every evaluation and calibration prompt
            (``tasks.fewshot_examples``; disjoint from both), recorded in the spec as ``shot_ids``.
        intact: the intact network's pass, shared with other calls on the same model and items
            (:class:`IntactPrefixes`); None: run at step 0 (once for all ``seeds``).
    Returns:
        one :class:`Trace` per seed, each with n_remove + 1 steps. With a store, a trace whose shorter version
        (the same spec with a smaller ``n_remove``) is stored continues from it (:func:`extend_stored`).
    """
    check_format(format)
    n_total = count_layers(model)
    _check_arguments(schedule, evaluation, calibration, criterion, layers, n_total, format, shots)
    recipe = get_schedule(schedule)
    calibration = calibration if recipe.calibration else ()
    most = recipe.most_removable(n_total, layers)
    n_remove = most if n_remove is None else n_remove
    if not 0 <= n_remove <= most:
        raise ValueError(f"n_remove={n_remove} is outside 0..{most} for schedule '{schedule}' on {n_total} layers")
    specs = [trace_spec(model, schedule, evaluation, calibration, criterion=criterion, seed=seed, layers=layers,
                        n_remove=n_remove, format=format, task=task, split=split, readout=readout, shots=shots)
             for seed in seeds]
    traces = [Trace.load(store, spec) if store is not None else None for spec in specs]
    if all(trace is not None for trace in traces):
        return traces

    sets = {}
    if calibration:
        sets["calibration"] = encode_calibration(model, tokenizer, calibration, format, task, token_budget,
                                                 shared_context=recipe.calibration != "sequences", shots=shots)
    sets["evaluation"] = encode_items(model, tokenizer, evaluation, format, task, token_budget, shots=shots)
    use_cache = _use_cache(model, cache, sets if recipe.greedy else {"evaluation": sets["evaluation"]})
    if intact is not None and use_cache["evaluation"]:
        evaluation_runner = intact.runner(model, sets["evaluation"],
                                          intact_key(model, specs[0], sets["evaluation"].token_budget), readout)
    else:
        evaluation_runner = PrefixRunner(model, sets["evaluation"], use_cache["evaluation"])
    gold = np.array([item.gold for item in evaluation])
    for index, (seed, spec) in enumerate(zip(seeds, specs)):
        if traces[index] is None:
            extends = extend_stored(store, spec) if store is not None else None
            plan = recipe.planner(PlanInputs(model, n_total, n_remove + 1, seed, sets.get("calibration"), calibration,
                                             use_cache.get("calibration", False), criterion, layers))
            desc = progress if isinstance(progress, str) or len(seeds) == 1 else f"{schedule} seed {seed}"
            traces[index] = run_plan(plan, evaluation_runner, gold, spec, store, progress and desc, extends=extends)
    return traces


def single_layer_removals(model: nn.Module, tokenizer, items: Sequence[Item], format: str = "letter",
                          task: str | None = None, shots: Sequence[Item] = (), layerwise: bool = True,
                          token_budget: int | None = None, progress: bool | str = True) -> dict[str, Any]:
    """Every layer removed alone from the intact network (the first greedy step of Iterative Pruning, prefix reuse).

    Returns:
        ``intact``: float32 [n_items, n_options] scores of the intact network; ``intact_readout``: float32
        [n_layers + 1, n_items, n_options] (None without ``layerwise``); ``scores``: float32 [n_layers, n_items,
        n_options], the network without layer l in row l; ``readouts``: per layer l, float32 [n_layers, n_items,
        n_options], the readout of the network without it (embeddings first; None without ``layerwise``).
    """
    runner = PrefixRunner(model, encode_items(model, tokenizer, items, format, task, token_budget, shots=shots))
    everything = tuple(range(count_layers(model)))
    runner.remember(everything, layerwise=layerwise)
    intact = runner.run_layerwise(everything) if layerwise else (runner.run(everything), None)
    _, found = candidate_scores(runner, everything, layerwise=layerwise, progress=progress and "layers removed alone")
    return {"intact": intact[0], "intact_readout": intact[1],
            "scores": np.stack([entry[0] for entry in found] if layerwise else found),
            "readouts": [entry[1] for entry in found] if layerwise else None}
