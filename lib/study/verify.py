"""Reproduction check: recompute stored results of one kind and compare them with what is stored.

``reproduce --verify KIND`` copies the store without that kind's results into a temporary folder,
runs the profile's plan steps there (every other kind is read from the copy, so only ``KIND`` is
computed), and compares each recomputed result with the stored one of the same key: the largest
absolute difference of its float values, and, for score arrays (``[..., n_options]``), how many
predictions (argmax over options) flip. The committed store is never written.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from layercollapse.storage.store import Result, Store

#: Default tolerance of ``reproduce --verify``: max |Δ| of any float value (nats for log-probabilities).
DEFAULT_TOLERANCE = 1e-3
SCORE_ARRAYS = ("scores",)  # float arrays [..., n_options] whose argmax over the last axis is a prediction


@dataclass(frozen=True)
class Comparison:
    """A recomputed result against the stored one of the same key.

    Attributes:
        kind, key: the result; what: its model / task / experiment, for people.
        n_values: float values compared; max_abs: their largest |recomputed - stored| (0 when none).
        n_over: values whose difference exceeds the tolerance the comparison was made with.
        n_predictions, n_flips: predictions in the score arrays, and how many changed.
        mismatch: a structural difference (names, shapes, non-float values), else "".
    """

    kind: str
    key: str
    what: str
    n_values: int = 0
    max_abs: float = 0.0
    n_over: int = 0
    n_predictions: int = 0
    n_flips: int = 0
    mismatch: str = ""

    def agrees(self) -> bool:
        """Within the tolerance everywhere, no prediction flipped, same structure."""
        return not self.mismatch and self.n_over == 0 and self.n_flips == 0

    def line(self) -> str:
        """One line for the terminal."""
        verdict = "OK" if self.agrees() else "DIFFERS"
        if self.mismatch:
            return f"  {verdict:7s}  {self.kind}/{self.key}  {self.what}: {self.mismatch}"
        flips = (f", {self.n_flips} of {self.n_predictions} predictions flip" if self.n_predictions
                 else "")
        return (f"  {verdict:7s}  {self.kind}/{self.key}  {self.what}: max |Δ| {self.max_abs:.3g} over "
                f"{self.n_values} values ({self.n_over} beyond tolerance){flips}")


def _describe(result: Result) -> str:
    spec = result.spec
    if isinstance(spec.get("trace_spec"), dict):  # a result along a pruning trace: name the trace
        spec = {**spec["trace_spec"], "experiment": spec.get("experiment")}
    parts = [str(spec[name]) for name in ("model", "task", "experiment", "schedule") if spec.get(name) is not None]
    return " ".join(parts) or "-"


def compare_results(stored: Result, fresh: Result, tolerance: float = DEFAULT_TOLERANCE) -> Comparison:
    """Compare two results of the same key: float values within ``tolerance``, other values exactly."""
    base = {"kind": stored.kind, "key": stored.key, "what": _describe(stored)}
    extra = sorted(set(fresh.arrays) - set(stored.arrays)) + sorted(set(fresh.table.columns) - set(stored.table.columns))
    if extra:
        return Comparison(**base, mismatch=f"recomputed result has {extra} that the stored one lacks")
    # (label, stored values, recomputed values or None, whether argmax over the last axis is a prediction)
    pairs = [(f"array {name!r}", old, fresh.arrays.get(name), name in SCORE_ARRAYS) for name, old in stored.arrays.items()]
    pairs += [(f"column {col!r}", stored.table[col].to_numpy(),
               fresh.table[col].to_numpy() if col in fresh.table.columns else None, False) for col in stored.table.columns]
    totals = {"n_values": 0, "max_abs": 0.0, "n_over": 0, "n_predictions": 0, "n_flips": 0}
    for label, old, new, is_scores in pairs:
        if new is None or np.shape(old) != np.shape(new):
            found = "missing" if new is None else f"shape {np.shape(new)}"
            return Comparison(**base, mismatch=f"{label}: stored shape {np.shape(old)}, recomputed {found}")
        old, new = np.asarray(old), np.asarray(new)
        if old.dtype.kind != "f" or new.dtype.kind != "f":
            if not np.array_equal(old, new):
                return Comparison(**base, **totals, mismatch=f"{label} differs")
            continue
        same = (old == new) | (np.isnan(old) & np.isnan(new))  # equal infinities (absent options) agree
        with np.errstate(invalid="ignore"):
            diff = np.abs(new.astype(np.float64) - old.astype(np.float64))
        diff = np.where(same, 0.0, np.nan_to_num(diff, nan=np.inf, posinf=np.inf))
        totals["n_values"] += diff.size
        totals["n_over"] += int((diff > tolerance).sum())
        totals["max_abs"] = max(totals["max_abs"], float(diff.max(initial=0.0)))
        if is_scores and old.ndim >= 1:
            totals["n_predictions"] += old[..., 0].size
            totals["n_flips"] += int((old.argmax(-1) != new.argmax(-1)).sum())
    return Comparison(**base, **totals)


def verify_kind(experiments, kind: str, only: str | None = None, tolerance: float = DEFAULT_TOLERANCE,
                workdir: str | Path | None = None) -> list[Comparison]:
    """Recompute the ``kind`` results of ``experiments``'s plan steps (those whose name contains ``only``).

    Args:
        experiments: an ``Experiments`` over the store to check; it is read, never written.
        workdir: where the temporary store goes (default: the system's temp folder); removed afterwards.

    Returns:
        one Comparison per recomputed result that the store held under the same key, in key order.
    """
    from layercollapse.study.plan import run_plan_steps

    stored = experiments.store
    with tempfile.TemporaryDirectory(prefix="layercollapse-verify-", dir=workdir) as tmp:
        scratch = Path(tmp) / "store"
        if stored.root.exists():
            shutil.copytree(stored.root, scratch, ignore=lambda folder, names: [kind] if Path(folder) == stored.root
                            else [])
        for _ in run_plan_steps(experiments.on_store(Store(scratch), compute=True), only):
            pass
        fresh_store = Store(scratch)
        comparisons = []
        for key in sorted(sidecar["key"] for sidecar in fresh_store.sidecars(kind, damaged="raise")):
            old = stored.load_key(kind, key, damaged="raise")
            if old is not None:
                comparisons.append(compare_results(old, fresh_store.load_key(kind, key, damaged="raise"), tolerance))
        return comparisons
