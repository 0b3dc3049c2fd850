"""Where the checkout is: the one definition every tier uses to find ``profiles/``, ``data/`` and the site."""

from __future__ import annotations

from pathlib import Path


def project_root() -> Path:
    """The checkout's root folder: the parent of ``lib/`` (holds _quarto.yml, profiles/, data/)."""
    return Path(__file__).resolve().parent.parent
