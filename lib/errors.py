"""User-facing errors: bad input becomes one clear message and exit code 2, not a traceback."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from .architectures import UnsupportedArchitecture
from .chapters import ChapterError
from .embedded import MissingEmbeddedPackage
from .models import UnknownModel
from .tasks import MalformedItem, UnknownTask

USER_ERRORS = (ChapterError, UnknownModel, UnknownTask, MalformedItem, MissingEmbeddedPackage, UnsupportedArchitecture,
               IndexError, FileNotFoundError, ValueError)


@contextmanager
def friendly_errors() -> Iterator[None]:
    """Turn known user errors into ``error: <message>`` on stderr and exit 2 (LAYERCOLLAPSE_DEBUG=1 keeps tracebacks)."""
    try:
        yield
    except USER_ERRORS as error:
        if os.environ.get("LAYERCOLLAPSE_DEBUG"):
            raise
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
