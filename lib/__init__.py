"""layercollapse: decision-transition analysis of layer-pruned LLMs.

The flow of every experiment is ``spec -> option scores (stored) -> metrics ->
statistics -> figure``; each arrow is one function of this package. The package
is tiered, each sub-package one job, lower tiers never importing higher ones
(``tests/project/test_architecture.py`` checks this list, and that every public name below resolves):

- ``model``: loading, the one place that knows architectures, layer views, layer hooks
- ``data``: multiple-choice tasks and prompt formats
- ``readout``: batching, the scoring hot path, logit and tuned lens
- ``measures``: accuracy, Decision Margin, Option Frequency; bootstrap intervals and tests
- ``storage``: the results store, keyed by spec and compute version; provenance
- ``pruning``: schedules and resumable traces
- ``controls``: noise, representation similarity, fine-tuning
- ``claims``: the rule behind each verdict of the ledger, and the rule that chooses the settings studied
- ``study``: profiles, the experiments of a profile and the plan ``reproduce`` runs
- ``site``: plots, tables, the ledger, the chapter runner
- ``cli``: ``python -m layercollapse``

The names most users need are importable from the top (``from layercollapse import score``);
they load their sub-package on first use, so ``import layercollapse`` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: Public name -> where it lives: ``"module:attribute"``, or a module (``metrics``, ``stats``).
PUBLIC = {
    "load_model": "model.loading:load_model",
    "drop_layers": "model.layers:drop_layers",
    "keep_layers": "model.layers:keep_layers",
    "load_task": "data.tasks:load_task",
    "subsample": "data.tasks:subsample",
    "Item": "data.tasks:Item",
    "score": "readout.scoring:score",
    "layerwise_scores": "readout.lens:layerwise_scores",
    "prune": "pruning:prune",
    "Trace": "pruning:Trace",
    "metrics": "measures.metrics",
    "stats": "measures.stats",
    "Experiments": "study.experiments:Experiments",
    "load_profile": "study.profiles:load_profile",
    "Store": "storage.store:Store",
}
__all__ = ["__version__", *PUBLIC]


def __getattr__(name: str) -> Any:
    """Load a public name's sub-package on first use (PEP 562)."""
    if name not in PUBLIC:
        raise AttributeError(f"module 'layercollapse' has no attribute {name!r}")
    module, _, attribute = PUBLIC[name].partition(":")
    value = importlib.import_module(f"{__name__}.{module}")
    value = getattr(value, attribute) if attribute else value
    globals()[name] = value
    return value


from layercollapse import progress as _progress  # noqa: E402,F401  (keeps tqdm's widget warning out of chapters)
