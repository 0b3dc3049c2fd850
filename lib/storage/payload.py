"""How one stored result is written to disk and read back: the codecs of its table and arrays, atomic writes, locks,
checksums, and the report of damaged files (``storage.store`` keys and finds results; this module moves their bytes).

Arrays file layout: one row, one column per array holding its values flattened in C order as ``large_list<dtype>``;
dtype and shape are in the sidecar and in the column's Arrow field metadata, so the file is self-describing.

Writes are atomic (temp file in the same folder + ``os.replace``; the sidecar is written last and is the commit point)
and serialised per key by an advisory file lock, so concurrent writers of different keys, or of one key with identical
content, are safe. A payload whose checksum does not match its sidecar is reported with a ``CorruptResultWarning``
and treated as missing (or raised as ``CorruptResultError``, where it may not be recomputed silently).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

try:  # POSIX advisory locks; elsewhere writes rely on atomic renames alone
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None

TABLE_SUFFIX = ".parquet"
ARRAYS_SUFFIX = ".arrays.parquet"
SIDECAR_SUFFIX = ".json"

Arrays = Mapping[str, np.ndarray]


class CorruptResultWarning(UserWarning):
    """A stored result failed verification and is treated as missing."""


class CorruptResultError(ValueError):
    """A stored result whose files are damaged, where it may not be silently recomputed."""

    def __init__(self, path: Path, why: str) -> None:
        super().__init__(f"{path}: {why}. Restore it (`git checkout -- {path.parent}` for a committed result), "
                         "or recompute it on purpose: `python -m layercollapse reproduce --repair`")
        self.path = path



# ------------------------------------------------------------------ payload codecs


def encode_table(table: pd.DataFrame | None) -> bytes:
    """Parquet bytes of ``table`` (an empty frame when None)."""
    frame = pd.DataFrame() if table is None else table
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"table must be a pandas DataFrame, got {type(frame).__name__}")
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pandas(frame, nthreads=1), sink)
    return sink.getvalue().to_pybytes()


def read_parquet(data: bytes) -> pa.Table:
    """The Parquet table in ``data``, read on the calling thread.

    Result files are small, and Arrow's background thread pools (``pq.read_table`` goes through the
    dataset scanner) can abort the interpreter at exit ("terminate called without an active
    exception", apache/arrow#34314), which turned a finished run into exit code -6.
    """
    with pq.ParquetFile(pa.BufferReader(data)) as parquet:
        return parquet.read(use_threads=False)


def decode_table(data: bytes) -> pd.DataFrame:
    return read_parquet(data).to_pandas(use_threads=False)


def check_arrays(arrays: Arrays | None) -> dict[str, np.ndarray]:
    """Validate names and dtypes; return C-contiguous, native-byte-order arrays."""
    checked = {}
    for name, array in (arrays or {}).items():
        if not isinstance(name, str) or not name:
            raise TypeError(f"array names must be non-empty strings, got {name!r}")
        array = np.asarray(array)
        if array.dtype.kind not in "biuf":
            raise TypeError(f"array {name!r}: dtype {array.dtype} is not bool/int/float")
        checked[name] = array.astype(array.dtype.newbyteorder("="), order="C", copy=False)
    return checked


def describe_arrays(arrays: Mapping[str, np.ndarray]) -> dict[str, dict[str, Any]]:
    return {n: {"dtype": a.dtype.name, "shape": list(a.shape)} for n, a in arrays.items()}


def encode_arrays(arrays: Mapping[str, np.ndarray]) -> bytes:
    """Parquet bytes holding each array as one flattened ``large_list`` value."""
    fields, columns = [], []
    for name, array in arrays.items():
        values = pa.array(array.reshape(-1))
        column = pa.LargeListArray.from_arrays(pa.array([0, array.size], pa.int64()), values)
        meta = {"dtype": array.dtype.name, "shape": json.dumps(list(array.shape))}
        fields.append(pa.field(name, column.type, nullable=False, metadata=meta))
        columns.append(column)
    sink = pa.BufferOutputStream()
    table = pa.Table.from_arrays(columns, schema=pa.schema(fields))
    pq.write_table(table, sink, use_dictionary=False)
    return sink.getvalue().to_pybytes()


def decode_arrays(data: bytes, described: Mapping[str, Mapping[str, Any]]) -> dict:
    table = read_parquet(data)
    arrays = {}
    for name, info in described.items():
        flat = pc.list_flatten(table.column(name)).to_numpy(zero_copy_only=False)
        array = flat.astype(info["dtype"], copy=False).reshape(info["shape"])
        arrays[name] = array if array.flags.writeable else array.copy()
    return arrays


def same_content(
    table_a: pd.DataFrame, arrays_a: Arrays, table_b: pd.DataFrame, arrays_b: Arrays
) -> bool:
    """Whether two decoded payloads are identical (arrays compared bit for bit)."""
    if not table_a.equals(table_b) or list(table_a.columns) != list(table_b.columns):
        return False
    if arrays_a.keys() != arrays_b.keys():
        return False
    return all(
        a.dtype == arrays_b[n].dtype
        and a.shape == arrays_b[n].shape
        and a.tobytes() == arrays_b[n].tobytes()
        for n, a in arrays_a.items()
    )


# ------------------------------------------------------------------ file plumbing


def fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same folder and ``os.replace``.

    The file gets the permissions of a plain ``open`` (0666 less the umask, e.g. 0644), not
    ``mkstemp``'s 0600, so a store shared on a cluster stays readable by the group.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


@contextlib.contextmanager
def locked(directory: Path, stem: str, shared: bool = False) -> Iterator[None]:
    """Advisory lock on ``<directory>/.<stem>.lock`` (no-op where it cannot be taken)."""
    lock_path = directory / f".{stem}.lock"
    if fcntl is None:
        yield
        return
    try:
        if not shared:
            directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:  # missing or read-only store: readers go ahead unlocked
        if not shared:
            raise
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_payload_(
    directory: Path, stem: str, table: bytes, arrays: bytes | None, meta: dict
) -> dict:
    """Write payload files, then the sidecar (the commit point); return the sidecar."""
    files = {stem + TABLE_SUFFIX: table}
    if arrays is not None:
        files[stem + ARRAYS_SUFFIX] = arrays
    sidecar = dict(meta)
    sidecar["files"] = {n: {"sha256": sha256(b), "n_bytes": len(b)} for n, b in files.items()}
    for name, data in files.items():
        write_atomic(directory / name, data)
    text = json.dumps(sidecar, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    write_atomic(directory / (stem + SIDECAR_SUFFIX), text.encode("utf-8"))
    if arrays is None:  # a result overwritten without arrays leaves none behind
        with contextlib.suppress(FileNotFoundError):
            os.unlink(directory / (stem + ARRAYS_SUFFIX))
    return sidecar


def report_damage(path: Path, why: str, damaged: str) -> None:
    """A stored result's file is unusable: raise ``CorruptResultError`` (``damaged="raise"``), say nothing
    (``"ignore"``: the caller is replacing it), else warn."""
    if damaged == "raise":
        raise CorruptResultError(path, why)
    if damaged == "ignore":
        return
    warnings.warn(f"{path}: {why}; treating the result as missing", CorruptResultWarning, stacklevel=4)


class Damaged(Exception):
    """Internal: a result's files exist but cannot be used (path, why)."""

    def __init__(self, path: Path, why: str) -> None:
        super().__init__(f"{path}: {why}")
        self.path, self.why = path, why


def read_payload(directory: Path, stem: str, damaged: str = "warn") -> tuple[dict, pd.DataFrame, dict] | None:
    """Read and verify a payload; None when it is not stored.

    ``damaged``: what a stored but unusable payload does: ``"warn"`` (a ``CorruptResultWarning``, then
    None: the caller recomputes it) or ``"raise"`` (``CorruptResultError``: the caller may not replace it).
    """
    try:
        return verified_payload(directory, stem)
    except Damaged as err:
        report_damage(err.path, err.why, damaged)
        return None


def verified_payload(directory: Path, stem: str) -> tuple[dict, pd.DataFrame, dict] | None:
    sidecar_path = directory / (stem + SIDECAR_SUFFIX)
    try:
        sidecar = json.loads(sidecar_path.read_text("utf-8"))
        files = sidecar["files"]
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise Damaged(sidecar_path, f"unreadable sidecar ({err})") from None
    blobs = {}
    for name, expected in files.items():
        path = directory / name
        try:
            data = path.read_bytes()
        except OSError as err:
            raise Damaged(path, f"payload missing ({err.strerror})") from None
        if len(data) != expected["n_bytes"] or sha256(data) != expected["sha256"]:
            raise Damaged(path, "checksum mismatch (corrupt or truncated)")
        blobs[name] = data
    try:
        table = decode_table(blobs[stem + TABLE_SUFFIX])
        described = sidecar.get("arrays", {})
        arrays = decode_arrays(blobs[stem + ARRAYS_SUFFIX], described) if described else {}
    except (pa.ArrowException, KeyError, ValueError) as err:
        raise Damaged(directory / (stem + TABLE_SUFFIX), f"undecodable payload ({err})") from None
    return sidecar, table, arrays


