"""Which items and passages an experiment runs on: disjoint, seeded selections, the same on every machine.

Every selection is a pure function of the task data and a seed, so a result's spec (which records
the item ids) names exactly what it was computed on.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from layercollapse.data.tasks import TASK_REGISTRY, Item, load_task, split_calibration

#: Plain-text corpora for the language-model loss control: corpus name -> task whose passages it uses.
TEXT_CORPORA = {"sciq_support": "sciq", "boolq_passages": "boolq"}
MIN_PASSAGE_CHARS = 200  # shorter passages carry too few tokens for a next-token loss


def evaluation_split(task: str, wanted: str) -> str:
    """``wanted`` when the task has that split offline, else the task's default split."""
    spec = TASK_REGISTRY[task.partition(":")[0]]
    return wanted if wanted in spec.offline else spec.default_split


def split_items(items: Sequence[Item], n_items: int | None, n_calibration: int,
                seed: int) -> tuple[tuple[Item, ...], tuple[Item, ...], tuple[Item, ...]]:
    """(calibration, evaluation, training) items: disjoint; calibration drawn first by ``seed``, then ``n_items``
    evaluation items (None: all the rest) by ``seed + 1``; training is what remains. Each keeps the data's order."""
    calibration, rest = split_calibration(items, n_calibration, None, seed)
    order = np.random.default_rng(seed + 1).permutation(len(rest))
    n_eval = len(rest) if n_items is None else min(n_items, len(rest))
    evaluation = tuple(rest[i] for i in sorted(order[:n_eval]))
    training = tuple(rest[i] for i in sorted(order[n_eval:]))
    return calibration, evaluation, training


def text_passages(corpus: str, n_passages: int, seed: int = 0) -> list[str]:
    """``n_passages`` distinct passages of a plain-text corpus (:data:`TEXT_CORPORA`), at least
    :data:`MIN_PASSAGE_CHARS` long, drawn by ``seed``, in the corpus's order."""
    texts = [item.passage for item in load_task(TEXT_CORPORA[corpus]).items if len(item.passage) > MIN_PASSAGE_CHARS]
    unique = list(dict.fromkeys(texts))
    return [unique[i] for i in sorted(np.random.default_rng(seed).permutation(len(unique))[:n_passages])]


def items_by_id(task: str, split: str, ids: Sequence[str]) -> tuple[Item, ...]:
    """The items of ``task``/``split`` with these ids, in this order (a stored spec's items)."""
    by_id = {item.id: item for item in load_task(task, split).items}
    return tuple(by_id[i] for i in ids)


def task_table(profile) -> pd.DataFrame:
    """The tasks of a profile: the split evaluated, its source, items available and how many each experiment uses
    (a task whose data is not on this machine says so in ``source``, with no count)."""
    rows = []
    for task in profile.tasks:
        split = evaluation_split(task, profile.eval_split)
        try:
            data = load_task(task, split)
            source, n_available = data.source, len(data.items)
        except Exception as error:  # noqa: BLE001  a page about the data must show what is missing, not fail
            source, n_available = f"not available here ({type(error).__name__})", None
        rows.append({"task": task, "split": split, "source": source, "n available": n_available,
                     "n evaluated": profile.n_items if profile.n_items is not None else n_available,
                     "n pruning": profile.n_pruning_items if task == profile.pruning_task else None,
                     "n calibration": profile.n_calibration})
    return pd.DataFrame(rows)
