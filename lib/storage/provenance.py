"""Which computation a stored result came from: its key's compute version, and an audit record.

A result is keyed by its spec and the **compute version** of its kind (:data:`COMPUTE_VERSIONS`),
an integer the author bumps when a change alters the numbers that kind stores. Nothing else is
in the key: a comment, a rename or a refactor anywhere in the library keeps every stored result
served. The versions are kept honest by golden-output tests (``tests/study/test_golden.py``): each
kind is computed through the same code path the profiles use, on tiny random models, and
compared with a committed reference; a numerical change without a bump fails there, and says
which version to bump.

What can change a result's numbers but is not in its key (library and package versions, git
commit, source hashes, threads, CPU/GPU, token budget, wall time) goes into the result's
sidecar for audit (:func:`audit_record`), never into the key.
"""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

_LIB = Path(__file__).resolve().parents[1]  # lib/

#: Compute version of each result kind: bump the kind's number when a change alters what it stores
#: (then regenerate the golden references: ``python tests/golden.py``). Kinds built on another kind's
#: code (every kind scores items like ``readout``) are bumped with it: their golden tests fail too.
COMPUTE_VERSIONS: dict[str, int] = {
    "readout": 1,     # layer-wise option scores of the intact network (logit lens)
    "tuned_lens": 1,  # tuned-lens readout and KL per depth
    "trace": 1,       # pruning schedules: removals, criterion values, evaluation scores per step
    "noise": 1,       # noise-injection sweep per (layer, variance, draw)
    "lm_loss": 1,     # next-token loss of plain-text passages along a trace
    "similarity": 1,  # CKA / cosine of final states along a trace
    "finetune": 1,    # fine-tuning recovery along the iterative trace
    "margins": 1,     # every greedy candidate's criterion along a trace, and the criterion at several token budgets
}

#: The packages whose versions are recorded with every result (they can move its numbers).
RECORDED_PACKAGES = ("torch", "transformers", "numpy", "scipy", "pandas", "pyarrow", "gguf", "peft")
#: The packages a rendered page names (the ones that draw it, beside the ones that computed its results).
RENDER_PACKAGES = ("torch", "transformers", "numpy", "pandas", "scipy", "statsmodels", "altair", "nbclient")


class UnknownKind(KeyError):
    """A result kind with no compute version."""


def compute_version(kind: str) -> str:
    """The compute version in a result's key, e.g. ``"trace.v1"``; raises :class:`UnknownKind`."""
    if kind not in COMPUTE_VERSIONS:
        raise UnknownKind(f"result kind '{kind}' has no compute version; known kinds: {', '.join(COMPUTE_VERSIONS)} "
                          "(add it to COMPUTE_VERSIONS in lib/storage/provenance.py)")
    return f"{kind}.v{COMPUTE_VERSIONS[kind]}"


def is_current(kind: str, stored_compute_version: str | None) -> bool:
    """Whether a result stored with this compute version is served by the current code."""
    return kind in COMPUTE_VERSIONS and stored_compute_version == compute_version(kind)


def split_results(results: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``store.list_results`` rows -> (current, stale): stale ones were computed at another compute version.

    A stale result is never served (its key differs from the current one); it stays on disk until
    removed (``python -m layercollapse reproduce --remove-stale``).
    """
    if results.empty:
        return results, results
    current = np.array([is_current(kind, version) for kind, version in
                        zip(results["kind"], results["compute_version"])], dtype=bool)
    return results[current].reset_index(drop=True), results[~current].reset_index(drop=True)


def current_results(store) -> pd.DataFrame:
    """``store.list_results`` restricted to what the current code serves (the inventory chapters count)."""
    from layercollapse.storage.store import list_results

    return split_results(list_results(store))[0]


# ------------------------------------------------------------------------ audit record


@cache
def source_hashes() -> dict[str, str]:
    """sha256 (16 hex) of every module of the library, by path relative to ``lib/`` (read once per process)."""
    return {str(path.relative_to(_LIB)): hashlib.sha256(path.read_bytes()).hexdigest()[:16]
            for path in sorted(_LIB.rglob("*.py"))}


@cache
def git_state() -> dict[str, Any]:
    """The checkout's commit and whether its library sources differ from it (None where there is no git)."""
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=_LIB, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--", ".") if commit else None
    return {"git_commit": commit, "git_dirty": None if status is None else bool(status)}


@cache
def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else ``platform.processor()``."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def package_versions(names: Sequence[str] = RECORDED_PACKAGES) -> dict[str, str | None]:
    """Installed versions of the packages ``names`` (None when absent)."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def environment(device: str | None = None) -> dict[str, Any]:
    """Where a result is computed: python, package versions, CPU, threads, device and GPU (when CUDA)."""
    import torch

    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    return {"python": platform.python_version(), "packages": package_versions(), "platform": platform.platform(),
            "cpu": cpu_model(), "n_cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "device": device, "gpu": gpu}


def audit_record(kind: str, *, device: str | None = None, dtype: str | None = None,
                 token_budget: int | None = None, wall_s: float | None = None) -> dict[str, Any]:
    """Everything that can change a result's numbers but is not in its key, for its sidecar.

    Args:
        device, dtype: where and in which weights dtype the result was computed ("cpu", "bfloat16").
        token_budget: tokens per forward pass used (None: the device's default).
        wall_s: seconds the computation took.
    """
    from layercollapse import __version__

    return {"compute_version": compute_version(kind), "layercollapse_version": __version__, **git_state(),
            "sources": source_hashes(), "environment": environment(device), "dtype": dtype,
            "token_budget": token_budget, "wall_s": None if wall_s is None else round(float(wall_s), 3)}


NOT_RECORDED = "not recorded"


def computed_in(store) -> pd.DataFrame:
    """Where the stored results were computed, from their sidecars: one row per distinct environment.

    Columns ``environment`` (library, torch and transformers versions), ``dtype``, ``device``, ``cpu``,
    ``threads``, ``results`` (how many) and ``kinds``; results computed before environments were
    recorded (format 1, migrated) read ``not recorded``.
    """
    rows = []
    for kind in store.kinds():
        for sidecar in store.sidecars(kind):
            audit = sidecar.get("provenance") or {}
            env = audit.get("environment") or {}
            packages = env.get("packages") or {}
            versions = ", ".join(f"{name} {packages[name]}" for name in ("torch", "transformers") if name in packages)
            rows.append({"environment": f"layercollapse {audit.get('layercollapse_version') or '?'}"
                                        + (f", {versions}" if versions else ""),
                         "dtype": audit.get("dtype") or sidecar.get("spec", {}).get("dtype") or NOT_RECORDED,
                         "device": env.get("gpu") or env.get("device") or NOT_RECORDED,
                         "cpu": env.get("cpu") or NOT_RECORDED,
                         "threads": str(env.get("torch_threads") or NOT_RECORDED), "kind": kind})
    columns = ["environment", "dtype", "device", "cpu", "threads"]
    if not rows:
        return pd.DataFrame(columns=[*columns, "results", "kinds"])
    frame = pd.DataFrame(rows)
    return (frame.groupby(columns, sort=False).agg(results=("kind", "size"),
                                                   kinds=("kind", lambda kinds: ", ".join(sorted(set(kinds)))))
            .reset_index())


def rendering_environment(device: str, dtype: str, packages: Sequence[str] = RENDER_PACKAGES) -> pd.DataFrame:
    """The environment this process runs in (:func:`environment`), for a page to show beside where its results were
    computed: one row per item (python, layercollapse, each of ``packages``, device, weights dtype, CPU and logical
    cores, GPU, platform) with its ``value``."""
    from layercollapse import __version__

    env = environment(device)
    rows = [("python", env["python"]), ("layercollapse", __version__),
            *((name, found or "not installed") for name, found in package_versions(packages).items()),
            ("device", device), ("weights dtype", dtype),
            ("CPU", f"{env['cpu']} ({env['n_cpus'] or 'unknown number of'} logical cores)"),
            ("GPU", env["gpu"] or "none"), ("platform", env["platform"])]
    return pd.DataFrame(rows, columns=["item", "value"])


def compute_times(store) -> pd.DataFrame:
    """How long the stored results took to compute, per kind, from the wall time each one's audit record carries.

    Returns:
        one row per kind: results, recorded (how many carry a wall time), hours (their sum; NaN when none does).
    """
    rows = [{"kind": kind, "wall_s": (sidecar.get("provenance") or {}).get("wall_s")}
            for kind in store.kinds() for sidecar in store.sidecars(kind)]
    frame = pd.DataFrame(rows, columns=["kind", "wall_s"])
    return (frame.groupby("kind").agg(results=("wall_s", "size"), recorded=("wall_s", "count"),
                                      hours=("wall_s", lambda seconds: seconds.sum(min_count=1) / 3600))
            .reset_index())
