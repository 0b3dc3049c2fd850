"""Which source code computed a stored result: the code half of every result's key.

A result is keyed by its spec, the library version and :func:`code_version` of its kind,
so editing a module that computes it makes the store recompute it instead of serving it
stale. Each kind lists the modules whose source decides its numbers (the readout modules
underlie every kind); batching knobs that tests show leave results unchanged
(``budget.py``) and bookkeeping (``store.py``, ``experiments.py``) are not part of it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

_LIB = Path(__file__).resolve().parent

#: Modules whose source decides each result family (a change recomputes it).
CODE = {
    "readout": ("scoring", "batching", "lens", "prompts", "tasks", "layers", "architectures", "models", "embedded"),
    "trace": ("pruning", "metrics"),
    "noise": ("noise", "pruning", "metrics"),
    "lm_loss": ("pruning", "metrics"),  # along a pruning trace
    "similarity": ("similarity", "pruning", "metrics"),  # along a pruning trace
    "finetune": ("finetune", "tuned_lens", "pruning", "metrics"),  # recovers a pruning trace's networks
    "tuned_lens": ("tuned_lens",),
}


def code_version(kind: str) -> str:
    """sha256 (16 hex) of the source files that compute results of ``kind`` (readout modules included)."""
    modules = CODE["readout"] + tuple(m for m in CODE.get(kind, ()) if m not in CODE["readout"])
    digest = hashlib.sha256()
    for module in sorted(modules):
        digest.update((_LIB / f"{module}.py").read_bytes())
    return digest.hexdigest()[:16]


def is_current(kind: str, stored_code_version: str | None, stored_library_version: str | None,
               current_code_version: str | None = None) -> bool:
    """Whether a result stored with these versions would still be served (same code, same library version).

    ``current_code_version``: ``code_version(kind)`` when the caller has it already (it reads the sources).
    """
    from . import __version__

    current_code_version = current_code_version or code_version(kind)
    return stored_code_version == current_code_version and stored_library_version == __version__


def split_results(results: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``store.list_results`` rows -> (current, stale): stale ones were computed by other code or library versions.

    A stale result is never served (its key differs from the current one); it stays on disk until
    removed (``python -m layercollapse reproduce --remove-stale``).
    """
    if results.empty:
        return results, results
    versions = {kind: code_version(kind) for kind in results["kind"].unique()}  # hash each kind's sources once
    current = np.array([is_current(kind, code, library, versions[kind]) for kind, code, library in
                        zip(results["kind"], results["code_version"], results["layercollapse_version"])], dtype=bool)
    return results[current].reset_index(drop=True), results[~current].reset_index(drop=True)


def current_results(store) -> pd.DataFrame:
    """``store.list_results`` restricted to what the current code serves (the inventory chapters count)."""
    from .store import list_results

    return split_results(list_results(store))[0]
