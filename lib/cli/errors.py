"""User-facing errors: bad input becomes one clear message and exit code 2, not a traceback."""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from layercollapse import settings
from layercollapse.data.tasks import MalformedItem, UnknownTask
from layercollapse.model.architectures import UnsupportedArchitecture
from layercollapse.model.embedded import MissingEmbeddedPackage
from layercollapse.model.loading import UnknownModel
from layercollapse.site.chapters import ChapterError

USER_ERRORS = (ChapterError, UnknownModel, UnknownTask, MalformedItem, MissingEmbeddedPackage, UnsupportedArchitecture,
               IndexError, FileNotFoundError, ValueError)


def _show_warning(message, category, filename, lineno, file=None, line=None, _default=warnings.showwarning) -> None:
    """The library's own warnings as one line, ``warning: <message>``; others as Python shows them."""
    if not category.__module__.startswith("layercollapse"):
        return _default(message, category, filename, lineno, file, line)
    print(f"warning: {message} ({category.__name__})", file=file or sys.stderr)


@contextmanager
def friendly_errors() -> Iterator[None]:
    """Turn known user errors into ``error: <message>`` on stderr and exit 2 (LAYERCOLLAPSE_DEBUG=1 keeps tracebacks);
    the library's warnings print as one line each."""
    try:
        with warnings.catch_warnings():
            if not settings.debug():
                warnings.showwarning = _show_warning
            yield
    except USER_ERRORS as error:
        if settings.debug():
            raise
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
