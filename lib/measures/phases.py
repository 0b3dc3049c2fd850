"""The paper's central concept: the Silent and the Decisive Phase of a network, located in its layer-wise readout.

A :class:`Readout` holds a network's option scores read after every layer (logit lens); the *transition layer*
(BRIEF definition) is the first layer from which accuracy's item-bootstrap band stays above chance and mean DM is
rising; :func:`phases_from_readout` locates it and splits the layers into :class:`Phases`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from layercollapse.measures import metrics, stats


@dataclass(frozen=True)
class Readout:
    """Layer-wise option scores of the intact network.

    Attributes:
        scores: float32 [n_layers + 1, n_items, n_options]; row 0 = embeddings, row l + 1 = after layer l.
        gold: int [n_items].
        spec: the stored spec.
    """

    scores: np.ndarray
    gold: np.ndarray
    spec: dict[str, Any]

    @property
    def n_layers(self) -> int:
        return self.scores.shape[0] - 1

    def frame(self) -> pd.DataFrame:
        """One row per readout depth: layer (-1 = embeddings), accuracy, mean_dm, of_entropy."""
        summary = metrics.summarize(self.scores, self.gold)
        return pd.DataFrame({"layer": np.arange(-1, self.n_layers), "accuracy": summary["accuracy"],
                             "mean_dm": summary["mean_dm"], "of_entropy": summary["of_entropy"],
                             "model": self.spec["model"], "task": self.spec["task"]})


@dataclass(frozen=True)
class Phases:
    """Silent and Decisive Phase of a network, from its layer-wise readout.

    Attributes:
        transition: the statistics behind the split (per-depth accuracy band, bootstrap of the crossing).
        layer: transition layer (original index: the first layer whose output reads above chance), or None.
        layer_ci: percentile item-bootstrap interval of ``layer``, or None.
        dm_rising: mean DM after the transition layer exceeds mean DM before it.
        chance: accuracy of the best constant answer.
        n_layers: layers of the intact network.
    """

    transition: stats.TransitionResult
    layer: int | None
    layer_ci: tuple[int, int] | None
    dm_rising: bool
    chance: float
    n_layers: int

    @property
    def silent(self) -> list[int]:
        """Layers before the transition (all layers when there is none)."""
        return list(range(self.n_layers if self.layer is None else self.layer))

    @property
    def decisive(self) -> list[int]:
        """Layers from the transition on (none when there is none)."""
        return [] if self.layer is None else list(range(self.layer, self.n_layers))


def phases_from_readout(readout: Readout, confidence: float = 0.95, n_resamples: int = 1000, seed: int = 0) -> Phases:
    """Locate the transition layer (BRIEF definition) in a layer-wise readout."""
    correct = metrics.correct(readout.scores, readout.gold)  # [n_layers + 1, n_items]
    chance = metrics.chance_accuracy(readout.gold, readout.scores.shape[-1])
    transition = stats.transition_layer(correct, chance, confidence, n_resamples, seed)
    row = transition.row
    dm = metrics.mean_decision_margin(readout.scores, readout.gold)
    dm_rising = row is not None and row > 0 and dm[row:].mean() > dm[:row].mean()
    if not dm_rising:  # the BRIEF's rule: accuracy above chance *and* mean DM rising
        return Phases(transition, None, None, False, chance, readout.n_layers)
    return Phases(transition, transition.layer, transition.layer_ci, True, chance, readout.n_layers)


@dataclass(frozen=True)
class Rise:
    """Where a layer-wise readout's mean Decision Margin rises most steeply: a location that does not depend on how
    high the readout climbs (the transition layer does: a lower curve crosses the above-chance line later).

    Attributes:
        row: readout row r (1 .. n_rows - 1) whose mean DM exceeds row r - 1's by the most.
        row_ci: percentile item-bootstrap interval of ``row`` (the rule re-applied to each item resample).
        gain: mean DM gained from row r - 1 to row r (Decision Margin units).
    """

    row: int
    row_ci: tuple[int, int]
    gain: float


def steepest_rise(scores: np.ndarray, gold: np.ndarray, confidence: float = 0.95, n_resamples: int = 1000,
                  seed: int = 0) -> Rise | None:
    """The steepest rise of the mean Decision Margin between consecutive readout rows (:class:`Rise`).

    Rows may skip removed layers (a pruned network's readout): the rise is per readout step, so the row whose output
    shows the jump is the one named. The first of equal rises wins.

    Args:
        scores: float32 [n_rows, n_items, n_options], option scores read after each row (row 0 = embeddings).
        gold: int [n_items].
    Returns:
        The rise, or None for fewer than two rows.
    """
    if scores.shape[0] < 2:
        return None
    margin = metrics.decision_margin(scores, gold).astype(np.float64)  # [n_rows, n_items]
    mean = margin.mean(axis=1)  # [n_rows]
    row = int(np.argmax(np.diff(mean))) + 1
    draws = stats.resample_counts(margin.shape[1], n_resamples, seed)  # [n_resamples, n_items]
    resampled = draws @ margin.T / margin.shape[1]  # [n_resamples, n_rows], mean DM per resample
    rows = np.argmax(np.diff(resampled, axis=1), axis=1) + 1  # [n_resamples]
    low, high = stats.percentile_interval(rows, confidence, method="inverted_cdf")
    return Rise(row, (int(low), int(high)), float(mean[row] - mean[row - 1]))


def height_gains(scores: np.ndarray, gold: np.ndarray, row: int) -> tuple[np.ndarray, np.ndarray]:
    """Per item, what a readout gains from row ``row - 1`` (the row before a transition at ``row``) to its last row:
    (correct, Decision Margin), each float64 [n_items]; their means are the transition's height in accuracy and in
    mean DM. ``scores``: float32 [n_rows, n_items, n_options]."""
    correct = metrics.correct(scores[[row - 1, -1]], gold).astype(np.float64)  # [2, n_items]
    margin = metrics.decision_margin(scores[[row - 1, -1]], gold)  # [2, n_items]
    return correct[1] - correct[0], margin[1] - margin[0]
