"""Every environment variable the library reads, in one place: its name, what it does, and its default.

Each function reads the environment when it is called (tests and the chapter runner set variables for one run), so
nothing is cached at import. The README's table of environment variables is :data:`VARIABLES` (a test keeps them
equal).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from layercollapse.paths import project_root


@dataclass(frozen=True)
class Variable:
    """One environment variable: its name, what it does and what happens when it is not set."""

    name: str
    meaning: str
    default: str


STORE = Variable("LAYERCOLLAPSE_STORE", "the results store's folder, for every command and profile",
                 "data/store (default profile), data/store-<profile>, or the per-user cache's store/ for ad-hoc runs")
CACHE = Variable("LAYERCOLLAPSE_CACHE", "the per-user cache: assembled GGUF files and the results of ad-hoc runs",
                 "$XDG_CACHE_HOME/layercollapse, i.e. ~/.cache/layercollapse")
DATA = Variable("LAYERCOLLAPSE_DATA", "the folder holding verdicts/ (tests point it at a temporary folder)", "data/")
PROFILE = Variable("LAYERCOLLAPSE_PROFILE", "the active profile when QUARTO_PROFILE is not set (scripts, tests)",
                   "default")
QUARTO_PROFILE = Variable("QUARTO_PROFILE", "the active profile, set by Quarto (`--profile`) for the kernel",
                          "unset: LAYERCOLLAPSE_PROFILE")
COMPUTE = Variable("LAYERCOLLAPSE_COMPUTE", "1: chapters may compute missing results (`render --compute`)",
                   "0: a missing result stops the chapter with one line saying how to compute it")
VEGA = Variable("LAYERCOLLAPSE_VEGA", "how charts get the Vega JavaScript: `site` (one bundle per site) or "
                "`inline` (one per chart)", "site under Quarto, inline elsewhere (JupyterLab)")
QUARTO_ROOT = Variable("QUARTO_PROJECT_ROOT", "set by Quarto while it renders: the project the bundle is written to",
                       "unset: not under Quarto")
CELL_TIMEOUT = Variable("LAYERCOLLAPSE_CELL_TIMEOUT", "seconds a chapter cell may run when chapters are executed "
                        "without Quarto", "1800")
DEBUG = Variable("LAYERCOLLAPSE_DEBUG", "1: the command line shows tracebacks instead of one-line errors", "unset")
HUB_OFFLINE = Variable("HF_HUB_OFFLINE", "1: never reach for the Hugging Face Hub (CI sets it)", "0")
XDG_CACHE = Variable("XDG_CACHE_HOME", "the user's cache folder, under which the per-user cache lives", "~/.cache")

#: Every variable, in the order the README's table lists them.
VARIABLES = (STORE, CACHE, DATA, PROFILE, QUARTO_PROFILE, COMPUTE, VEGA, QUARTO_ROOT, CELL_TIMEOUT, DEBUG,
             HUB_OFFLINE, XDG_CACHE)

_TRUE = {"1", "true", "yes"}


def _get(variable: Variable) -> str:
    return os.environ.get(variable.name, "").strip()


def store_root() -> Path | None:
    """``$LAYERCOLLAPSE_STORE`` as a path, or None."""
    return Path(_get(STORE)).expanduser() if _get(STORE) else None


def cache_root() -> Path:
    """The per-user cache folder: ``$LAYERCOLLAPSE_CACHE``, else ``$XDG_CACHE_HOME/layercollapse``."""
    if _get(CACHE):
        return Path(_get(CACHE)).expanduser()
    return Path(_get(XDG_CACHE) or Path.home() / ".cache").expanduser() / "layercollapse"


def data_root(default: Path) -> Path:
    """``$LAYERCOLLAPSE_DATA``, else ``default`` (the project's ``data/``)."""
    return Path(_get(DATA)) if _get(DATA) else default


def profile_names() -> list[str]:
    """The profiles Quarto activated (``$QUARTO_PROFILE``, comma-separated), in order; [] outside Quarto."""
    return [name.strip() for name in _get(QUARTO_PROFILE).split(",") if name.strip()]


def profile_override() -> str | None:
    """``$LAYERCOLLAPSE_PROFILE``, or None."""
    return _get(PROFILE) or None


def compute_allowed() -> bool:
    """Whether chapters may compute missing results: ``$LAYERCOLLAPSE_COMPUTE`` is "1"."""
    return _get(COMPUTE) == "1"


def vega_mode_override() -> str | None:
    """``$LAYERCOLLAPSE_VEGA``, or None."""
    return _get(VEGA) or None


def quarto_project_root() -> str | None:
    """The project Quarto is rendering (``$QUARTO_PROJECT_ROOT``), or None."""
    return _get(QUARTO_ROOT) or None


def cell_timeout(default: int) -> int:
    """``$LAYERCOLLAPSE_CELL_TIMEOUT`` in seconds, else ``default``."""
    return int(_get(CELL_TIMEOUT) or default)


def debug() -> bool:
    """Whether the command line shows tracebacks (``$LAYERCOLLAPSE_DEBUG`` set)."""
    return bool(_get(DEBUG))


def hub_offline() -> bool:
    """Whether the Hugging Face Hub must not be reached (``$HF_HUB_OFFLINE``)."""
    return _get(HUB_OFFLINE).lower() in _TRUE


# ------------------------------------------------------------------ the active profile

DEFAULT_PROFILE = "default"


def profiles_dir() -> Path:
    """Folder of the experiment specs, ``<root>/profiles``."""
    return project_root() / "profiles"


def available_profiles() -> list[str]:
    """Names of the profiles that have an experiment spec, sorted."""
    return sorted(path.stem for path in profiles_dir().glob("*.yml"))


def active_profile() -> str:
    """Name of the active profile.

    ``QUARTO_PROFILE`` (set by Quarto for the kernel; comma-separated when several
    profiles are active) wins: its first entry that has a ``profiles/<name>.yml``,
    else its first entry. Then ``LAYERCOLLAPSE_PROFILE``, then ``"default"``.
    """
    quarto = profile_names()
    if quarto:
        known = set(available_profiles())
        return next((name for name in quarto if name in known), quarto[0])
    return profile_override() or DEFAULT_PROFILE
