"""Results store: every experiment's output, keyed by a hash of its full spec.

A result is a table (``pandas.DataFrame``) and/or named numpy arrays, stored as

    <root>/<kind>/<key>.json            sidecar: spec, versions, shapes, checksums
    <root>/<kind>/<key>.parquet         the table (zero columns when there is none)
    <root>/<kind>/<key>.arrays.parquet  the arrays, only when there are some

``key`` is the first 16 hex digits of the sha256 of the canonical JSON of the spec
together with the caller's ``compute_version`` (``provenance.compute_version``: an explicit
version per result kind, bumped when its numbers change), so a change to either gives a new
key and the result is recomputed, never served stale. What is not in the key but may be
audited later (library version, git commit, package versions, machine) is stored in the
sidecar's ``provenance`` record, passed as ``audit=``.

How the files are written and read back (the arrays' layout, atomic writes, locks, checksums, damaged files) is
``storage.payload``'s job; its names a caller needs (``write_atomic``, ``CorruptResultError``, the suffixes) are
re-exported here. A payload whose checksum does not match its sidecar is reported with a ``CorruptResultWarning`` and
treated as missing, so the caller recomputes it.

Long runs write a ``Checkpoint``: one small result per step under
``<root>/<kind>/<key>.partial/``, so a killed process resumes at the first missing step.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import shutil
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from layercollapse import settings
from layercollapse.storage.payload import (  # re-exported: the store's files
    Arrays,
    ARRAYS_SUFFIX,
    check_arrays,
    CorruptResultError,
    CorruptResultWarning,
    decode_table,
    describe_arrays,
    encode_arrays,
    encode_table,
    locked,
    read_payload,
    report_damage,
    same_content,
    SIDECAR_SUFFIX,
    TABLE_SUFFIX,
    write_atomic,
    write_payload_,
)

STORE_ENV = settings.STORE.name
KEY_LENGTH = 16  # hex digits of sha256 kept in a key: 64 bits, collisions negligible
FORMAT_VERSION = 2  # of the on-disk layout; bump when it changes (2: compute version + provenance record)
PARTIAL_SUFFIX = ".partial"


class ResultExistsError(FileExistsError):
    """A different result is already stored under this key (pass ``overwrite=True``)."""


# --------------------------------------------------------------------------- specs


def normalize_spec(value: Any) -> Any:
    """Return ``value`` as plain JSON types, the form that is hashed and stored.

    numpy scalars become Python scalars, numpy arrays / tuples / lists become lists,
    dataclasses become dicts, paths become strings, floats with an integral value
    become ints (so ``1`` and ``1.0`` or ``np.float64(1)`` give the same key), and
    ``-0.0`` becomes ``0``. Raises ``TypeError`` for non-string dict keys, sets and
    other types, ``ValueError`` for NaN or infinite floats.
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, np.ndarray):
        value = value.tolist()
    elif isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"spec values must be finite, got {value!r}")
        return int(value) if value.is_integer() else value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, Mapping):
        bad = [k for k in value if not isinstance(k, str)]
        if bad:
            raise TypeError(f"spec keys must be strings, got {bad!r}")
        return {k: normalize_spec(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [normalize_spec(v) for v in value]
    raise TypeError(
        f"cannot put {type(value).__name__} in a spec; use JSON types "
        "(sets have no order: pass a sorted list)"
    )


def canonical_json(value: Any) -> str:
    """Serialise a spec deterministically: normalised, sorted keys, no whitespace."""
    return json.dumps(
        normalize_spec(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )


def versioned_spec(spec: Mapping[str, Any], compute_version: str = "") -> dict[str, Any]:
    """Bundle a spec with its compute version: the object that is hashed."""
    return {"spec": normalize_spec(spec), "compute_version": str(compute_version)}


def json_digest(value: Any) -> str:
    """The first :data:`KEY_LENGTH` hex digits of the sha256 of ``value``'s canonical JSON."""
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()[:KEY_LENGTH]


def spec_key(spec: Mapping[str, Any], compute_version: str = "") -> str:
    """Return the 16-hex-digit key of ``spec`` under ``compute_version``."""
    return json_digest(versioned_spec(spec, compute_version))


#: The profile whose results are committed in ``data/store``; every other profile keeps its own
#: store beside it (``data/store-<profile>``, ignored by git), so test runs never touch the committed one.
COMMITTED_PROFILE = "default"


def default_root(profile: str | None = None) -> Path:
    """Store root: ``$LAYERCOLLAPSE_STORE`` if set; else, for a profile, ``data/store`` (the committed
    default profile's) or ``data/store-<profile>`` (ignored by git); without a profile (ad-hoc runs of
    the CLI and the library), ``store/`` in the per-user cache (:func:`layercollapse.model.embedded.cache_root`),
    so that they never mix with the committed results."""
    override = settings.store_root()
    if override is not None:
        return override
    if profile is None:
        from layercollapse.model.embedded import cache_root

        return cache_root() / "store"
    from layercollapse.paths import project_root

    data = project_root() / "data"
    return data / "store" if profile == COMMITTED_PROFILE else data / f"store-{profile}"


# ------------------------------------------------------------------- reads log

_RESULTS_READ: dict[tuple[str, str, str], str] = {}  # (store root, kind, key) -> content digest of each result read


def content_digest(sidecar: Mapping[str, Any]) -> str:
    """16 hex digits identifying a stored result's content: the sha256 of its payload files' checksums."""
    return json_digest(sidecar.get("files", {}))


def results_read(store: Store) -> list[dict[str, str]]:
    """Every result of ``store`` this process has loaded (and verified) so far: kind, key, content digest.

    A verdict records these as its evidence (``Verdict.record``): a chapter runs in its own kernel, so
    they are the results the chapter read.
    """
    root = str(store.root.resolve())
    return [{"kind": kind, "key": key, "digest": digest}
            for (where, kind, key), digest in sorted(_RESULTS_READ.items()) if where == root]


# ------------------------------------------------------------------------- store


@dataclasses.dataclass(frozen=True, eq=False)
class Result:
    """One stored result.

    Attributes:
        key: 16-hex-digit spec key.
        kind: result family, e.g. ``"scores"``, ``"trace"``, ``"layerwise"``.
        spec: the caller's spec, normalised to JSON types.
        table: the stored rows (zero columns when the result has none).
        arrays: named arrays, dtype and shape exactly as saved.
        meta: the full sidecar (versions, creation time, shapes, checksums).
    """

    key: str
    kind: str
    spec: dict[str, Any]
    table: pd.DataFrame
    arrays: dict[str, np.ndarray]
    meta: dict[str, Any]


class Store:
    """A folder of results, one subfolder per kind, keyed by spec hash."""

    def __init__(self, root: str | os.PathLike | None = None, profile: str | None = None) -> None:
        """Open the store at ``root`` (default: ``default_root(profile)``); created on first write."""
        self.root = Path(root).expanduser() if root is not None else default_root(profile)

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    def directory(self, kind: str) -> Path:
        """Folder holding results of ``kind``."""
        if not kind or "/" in kind or "\\" in kind or kind.startswith("."):
            raise ValueError(f"invalid kind {kind!r}")
        return self.root / kind

    def save(
        self,
        kind: str,
        spec: Mapping[str, Any],
        table: pd.DataFrame | None = None,
        arrays: Arrays | None = None,
        *,
        compute_version: str = "",
        audit: Mapping[str, Any] | None = None,
        overwrite: bool = False,
    ) -> str:
        """Store a result atomically and return its key.

        Saving identical content again is a no-op; different content under an
        existing key raises ``ResultExistsError`` unless ``overwrite=True``.
        Args:
            table: rows of the result; arrays: name -> bool/int/float array of any shape.
            audit: the sidecar's ``provenance`` record (``provenance.audit_record``): not part of the
                key, not compared when the same content is saved again.
        """
        full = versioned_spec(spec, compute_version)
        key = spec_key(spec, compute_version)
        arrays = check_arrays(arrays)
        table_bytes = encode_table(table)
        arrays_bytes = encode_arrays(arrays) if arrays else None
        meta = {
            "format": FORMAT_VERSION,
            "key": key,
            "kind": kind,
            **full,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "table": {"n_rows": 0 if table is None else len(table),
                      "columns": [] if table is None else [str(c) for c in table.columns]},
            "arrays": describe_arrays(arrays),
            "provenance": normalize_spec(dict(audit or {})),
        }
        directory = self.directory(kind)
        with locked(directory, key):
            existing = read_payload(directory, key, damaged="ignore")  # a damaged one is being replaced
            if existing is not None and not overwrite:
                _, old_table, old_arrays = existing
                if existing[0].get("spec") == full["spec"] and same_content(
                    decode_table(table_bytes), arrays, old_table, old_arrays
                ):
                    return key
                raise ResultExistsError(
                    f"{directory / (key + TABLE_SUFFIX)} holds a different result for "
                    "this spec; pass overwrite=True to replace it"
                )
            write_payload_(directory, key, table_bytes, arrays_bytes, meta)
        return key

    def load(
        self, kind: str, spec: Mapping[str, Any], *, compute_version: str = "", damaged: str = "warn"
    ) -> Result | None:
        """Return the verified result for ``spec``, or None if missing (or corrupt, with ``damaged="warn"``).

        ``damaged="raise"``: a stored result whose files are damaged raises ``CorruptResultError``.
        """
        full = versioned_spec(spec, compute_version)
        result = self.load_key(kind, spec_key(spec, compute_version), damaged=damaged)
        if result is not None and result.meta.get("spec") != full["spec"]:
            report_damage(self.directory(kind) / (result.key + SIDECAR_SUFFIX),
                           "sidecar spec differs from the requested spec", damaged)
            return None
        return result

    def load_key(self, kind: str, key: str, *, damaged: str = "warn") -> Result | None:
        """Return the verified result stored under ``key``, or None (``damaged``: see :meth:`load`)."""
        directory = self.directory(kind)
        with locked(directory, key, shared=True):
            payload = read_payload(directory, key, damaged)
        if payload is None:
            return None
        sidecar, table, arrays = payload
        _RESULTS_READ[(str(self.root.resolve()), kind, key)] = content_digest(sidecar)
        return Result(key, kind, sidecar.get("spec", {}), table, arrays, sidecar)

    def sidecar(self, kind: str, spec: Mapping[str, Any], *, compute_version: str = "",
                damaged: str = "warn") -> dict[str, Any] | None:
        """The sidecar of the result stored for ``spec`` (its spec, provenance and the shapes of its arrays), or None;
        not verified against its payload and not a read of the result (``results_read`` does not list it).

        ``damaged``: an unreadable sidecar is reported as :meth:`sidecars` reports it (warn, or raise)."""
        path = self.directory(kind) / (spec_key(spec, compute_version) + SIDECAR_SUFFIX)
        try:
            sidecar = json.loads(path.read_text("utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as err:
            report_damage(path, f"unreadable sidecar ({err})", damaged)
            return None
        return sidecar if sidecar.get("spec") == versioned_spec(spec, compute_version)["spec"] else None

    def exists(self, kind: str, spec: Mapping[str, Any], *, compute_version: str = "") -> bool:
        """Whether a valid result for ``spec`` is stored."""
        return self.load(kind, spec, compute_version=compute_version) is not None

    def remove(self, kind: str, key: str) -> None:
        """Delete the result ``key`` of ``kind``: its sidecar first (the commit point), then its payload files."""
        directory = self.directory(kind)
        with locked(directory, key):
            for suffix in (SIDECAR_SUFFIX, TABLE_SUFFIX, ARRAYS_SUFFIX):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(directory / (key + suffix))

    def kinds(self) -> list[str]:
        """Kinds present in the store, sorted."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir()
                      if p.is_dir() and not p.name.startswith("."))

    def sidecars(self, kind: str, *, damaged: str = "warn") -> list[dict[str, Any]]:
        """Sidecars of all results of ``kind`` (not verified against payloads), by key.

        ``damaged``: an unreadable sidecar is skipped with a warning, or raises (see :meth:`load`)."""
        directory = self.directory(kind)
        found = []
        for path in sorted(directory.glob("*" + SIDECAR_SUFFIX)):
            if path.name.startswith("."):
                continue
            try:
                found.append(json.loads(path.read_text("utf-8")))
            except (OSError, ValueError) as err:
                report_damage(path, f"unreadable sidecar ({err})", damaged)
        return found


def _split_payload(value: Any) -> tuple[pd.DataFrame | None, Arrays | None]:
    """Accept a DataFrame, a mapping of arrays, or a (table, arrays) pair."""
    if isinstance(value, pd.DataFrame):
        return value, None
    if isinstance(value, Mapping):
        return None, value
    if isinstance(value, tuple) and len(value) == 2:
        return value
    raise TypeError(
        "compute_fn must return a DataFrame, a mapping of arrays or a (table, arrays) "
        f"pair, got {type(value).__name__}"
    )


def cached(
    store: Store,
    kind: str,
    spec: Mapping[str, Any],
    compute_fn: Callable[[], Any],
    *,
    compute_version: str = "",
    audit: Callable[[float], Mapping[str, Any]] | None = None,
    damaged: str = "warn",
) -> Result:
    """Load the result for ``spec`` if stored and valid, else compute, save and load it.

    ``compute_fn()`` returns a DataFrame, a mapping name -> array, or a
    ``(table, arrays)`` pair. ``audit(wall_s)`` gives the sidecar's provenance record of a
    computed result. The returned ``Result`` is always read back from disk, so a fresh
    computation and a cache hit give identical objects. ``damaged``: see :meth:`Store.load`
    (``"warn"`` recomputes a damaged result, ``"raise"`` refuses to).
    """
    result = store.load(kind, spec, compute_version=compute_version, damaged=damaged)
    if result is not None:
        return result
    start = time.perf_counter()
    table, arrays = _split_payload(compute_fn())
    record = None if audit is None else audit(time.perf_counter() - start)
    store.save(kind, spec, table, arrays, compute_version=compute_version, audit=record)
    result = store.load(kind, spec, compute_version=compute_version)
    if result is None:
        raise RuntimeError(f"result for {kind}/{spec_key(spec, compute_version)} vanished")
    return result


def list_results(store: Store, kind: str | None = None) -> pd.DataFrame:
    """One row per stored result (all kinds, or ``kind``), spec flattened to columns.

    Returns columns ``kind, key, created, compute_version, layercollapse_version, n_rows,
    arrays`` then ``spec.<field>`` (nested fields dotted, e.g. ``spec.schedule.name``).
    """
    rows = []
    for k in [kind] if kind is not None else store.kinds():
        for sidecar in store.sidecars(k):
            row = {
                "kind": sidecar.get("kind", k),
                "key": sidecar.get("key"),
                "created": sidecar.get("created"),
                "compute_version": sidecar.get("compute_version"),
                "layercollapse_version": sidecar.get("provenance", {}).get("layercollapse_version"),
                "n_rows": sidecar.get("table", {}).get("n_rows"),
                "arrays": sorted(sidecar.get("arrays", {})),
            }
            spec = pd.json_normalize(sidecar.get("spec", {}), sep=".")
            row.update({f"spec.{c}": v for c, v in spec.iloc[0].items()} if len(spec) else {})
            rows.append(row)
    base = ["kind", "key", "created", "compute_version", "layercollapse_version", "n_rows",
            "arrays"]
    return pd.DataFrame(rows, columns=None if rows else base)


# -------------------------------------------------------------------- checkpoint


@dataclasses.dataclass(frozen=True, eq=False)
class Step:
    """One finished step of a checkpointed run: its index, row and arrays."""

    index: int
    row: dict[str, Any]
    arrays: dict[str, np.ndarray]


class Checkpoint:
    """Step-by-step persistence of a long run, so a killed process can resume.

    Each step is written atomically as a small result under
    ``<root>/<kind>/<key>.partial/step_000007.*``. ``finalize`` stores the full result
    under the spec's key and removes the partial folder. One process per checkpoint.

    Typical use (check the store first: a finalized run has no partial folder)::

        result = store.load("trace", spec)
        if result is None:
            ckpt = Checkpoint(store, "trace", spec)
            done = ckpt.completed_steps()
            for step in range(len(done), n_steps):
                row, arrays = compute(step, done)
                ckpt.append_step(step, row, arrays)
            result = ckpt.finalize()
    """

    def __init__(
        self, store: Store, kind: str, spec: Mapping[str, Any], *, compute_version: str = ""
    ) -> None:
        self.store, self.kind, self.compute_version = store, kind, compute_version
        self.spec = normalize_spec(spec)
        self.key = spec_key(spec, compute_version)
        self.directory = store.directory(kind) / (self.key + PARTIAL_SUFFIX)

    @staticmethod
    def _stem(step: int) -> str:
        return f"step_{step:06d}"

    def _read_steps(self) -> list[tuple[int, pd.DataFrame, dict[str, np.ndarray]]]:
        """Valid steps 0, 1, ... up to the first missing or corrupt one."""
        steps = []
        while True:
            payload = read_payload(self.directory, self._stem(len(steps)))
            if payload is None:
                return steps
            row = payload[1] if len(payload[1]) else pd.DataFrame(index=pd.RangeIndex(1))
            steps.append((len(steps), row, payload[2]))  # ^ a 0-column row reads as 0 rows

    def completed_steps(self) -> list[Step]:
        """Finished steps, in order: the contiguous run 0..k-1 of valid step files.

        Steps after a missing or corrupt one are not returned (they may depend on
        it); recompute from ``len(completed_steps())``.
        """
        return [Step(i, table.to_dict("records")[0], arrays)
                for i, table, arrays in self._read_steps()]

    def append_step(
        self, step: int, row: Mapping[str, Any], arrays: Arrays | None = None
    ) -> None:
        """Persist step ``step`` atomically (replacing an earlier attempt at it).

        Args:
            row: scalar values of this step (the key ``"step"`` is reserved).
            arrays: name -> array for this step; same names and shapes every step if
                ``finalize`` is to stack them.
        """
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        if "step" in row:
            raise ValueError('the row key "step" is reserved for the step index')
        checked = check_arrays(arrays)
        meta = {"format": FORMAT_VERSION, "key": self.key, "step": step,
                "arrays": describe_arrays(checked)}
        write_payload_(self.directory, self._stem(step), encode_table(pd.DataFrame([row])),
                        encode_arrays(checked) if checked else None, meta)

    def finalize(
        self,
        table: pd.DataFrame | None = None,
        arrays: Arrays | None = None,
        *,
        audit: Mapping[str, Any] | None = None,
        overwrite: bool = False,
    ) -> Result:
        """Store the final result, remove the partial folder and return the result.

        Defaults: ``table`` = the step rows with a leading ``step`` column;
        ``arrays`` = each step array stacked along a new first axis,
        ``[n_steps, *step_shape]``. Both are read back from disk, so a resumed run and
        an uninterrupted one give identical results.
        """
        steps = self._read_steps()
        if table is None:
            table = _concat_step_rows([(i, t) for i, t, _ in steps])
        if arrays is None:
            arrays = _stack_step_arrays([a for _, _, a in steps])
        self.store.save(self.kind, self.spec, table, arrays, compute_version=self.compute_version,
                        audit=audit, overwrite=overwrite)
        shutil.rmtree(self.directory, ignore_errors=True)
        result = self.store.load(self.kind, self.spec, compute_version=self.compute_version)
        if result is None:
            raise RuntimeError(f"final result {self.kind}/{self.key} vanished")
        return result


def _concat_step_rows(steps: list[tuple[int, pd.DataFrame]]) -> pd.DataFrame:
    """One row per step, in order, with a leading ``step`` column."""
    if not steps:
        return pd.DataFrame({"step": pd.Series([], dtype="int64")})
    table = pd.concat([t for _, t in steps], ignore_index=True)
    table.insert(0, "step", np.array([i for i, _ in steps], dtype=np.int64))
    return table


def _stack_step_arrays(per_step: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Stack same-named step arrays: name -> ``[n_steps, *step_shape]``."""
    if not per_step:
        return {}
    names = per_step[0].keys()
    if any(a.keys() != names for a in per_step):
        raise ValueError("steps store different array names; pass arrays= to finalize")
    try:
        return {n: np.stack([a[n] for a in per_step]) for n in names}
    except ValueError as err:
        raise ValueError(f"step arrays differ in shape ({err}); pass arrays= to finalize") \
            from err
