"""Re-key a results store of format 1 (source-hash keys) to format 2 (compute-version keys), without recomputing.

Format 1 keyed a result by its spec, the library version and a hash of the source of the modules
that computed it (layercollapse 0.1.0). Format 2 keys it by its spec and the compute version of its
kind (``provenance.COMPUTE_VERSIONS``). A format-1 result computed by the last format-1 code
(:data:`LAST_FORMAT1_CODE`, the source hashes of commit 5c2a66f) is the version-1 result of its kind:
its payload files are kept byte for byte under the new key, and its sidecar records the old key
and code hash in its provenance. Results of older code are stale under both formats and are left
where they are (``reproduce --remove-stale`` lists and deletes them).

    python scripts/migrate_store.py [STORE]    # default: the checkout's data/store
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from layercollapse.storage.store import (
    FORMAT_VERSION,
    SIDECAR_SUFFIX,
    Store,
    spec_key,
    write_atomic,
)

#: provenance.code_version(kind) of the last format-1 code (commit 5c2a66f), for layercollapse 0.1.0.
LAST_FORMAT1_CODE = {
    "readout": "1674589102a7d524",
    "trace": "f65375b63e350334",
    "noise": "347c9f957c0e9efc",
    "lm_loss": "f65375b63e350334",
    "similarity": "1b5a7f8f443ced3e",
    "finetune": "cb709dba51318482",
    "tuned_lens": "98fb52f2fb0d2cc1",
}
FORMAT1_LIBRARY_VERSION = "0.1.0"
MIGRATED_TO = 1  # the compute version of every kind that a format-1 result becomes


def migrate_sidecar(directory: Path, sidecar: dict) -> str | None:
    """Move one format-1 result to its format-2 key; return the new key, or None when it is stale or new."""
    from layercollapse.storage.provenance import compute_version

    kind = sidecar["kind"]
    if sidecar.get("format") != 1:
        return None
    if (sidecar.get("code_version") != LAST_FORMAT1_CODE.get(kind)
            or sidecar.get("layercollapse_version") != FORMAT1_LIBRARY_VERSION):
        return None
    version = compute_version(kind)
    if version != f"{kind}.v{MIGRATED_TO}":
        raise SystemExit(f"{kind} is at {version}: format-1 results are version {MIGRATED_TO}; migrate before bumping")
    old, new = sidecar["key"], spec_key(sidecar["spec"], version)
    files = {}
    for name, info in sidecar["files"].items():
        renamed = new + name[len(old):]
        os.replace(directory / name, directory / renamed)  # same bytes: the checksums still hold
        files[renamed] = info
    migrated = {key: value for key, value in sidecar.items()
                if key not in ("code_version", "layercollapse_version", "files")}
    migrated.update(format=FORMAT_VERSION, key=new, compute_version=version, files=files, provenance={
        "compute_version": version, "layercollapse_version": FORMAT1_LIBRARY_VERSION,
        "migrated_from": {"format": 1, "key": old, "code_version": sidecar["code_version"]},
        "git_commit": None, "git_dirty": None, "environment": None,
        "note": "computed before format 2: no environment was recorded",
    })
    text = json.dumps(migrated, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    write_atomic(directory / (new + SIDECAR_SUFFIX), text.encode("utf-8"))
    os.unlink(directory / (old + SIDECAR_SUFFIX))
    return new


def migrate(store: Store) -> tuple[int, int]:
    """Migrate every format-1 result of ``store``; returns (migrated, left as they were)."""
    moved = left = 0
    for kind in store.kinds():
        for sidecar in store.sidecars(kind):
            if migrate_sidecar(store.directory(kind), sidecar) is None:
                left += 1
            else:
                moved += 1
    return moved, left


if __name__ == "__main__":
    target = Store(sys.argv[1] if len(sys.argv) > 1 else None)
    n_moved, n_left = migrate(target)
    print(f"{target.root}: {n_moved} result(s) re-keyed to format {FORMAT_VERSION}, {n_left} left as they were")
