"""Progress bars that never write into a rendered page.

tqdm's ``auto`` bars become Jupyter widgets in a kernel: without ipywidgets they print
"IProgress not found" into the chapter, with it they put widget state (and Quarto's CDN
scripts for widgets) into the page. Inside a kernel the bar is therefore a text bar on the
kernel process's own stderr (the terminal or log of whoever started the kernel: Quarto,
JupyterLab, the test harness); elsewhere it is a text bar on stderr.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, redirect_stderr
from typing import TextIO, TypeVar

from tqdm.std import TqdmWarning, tqdm

__all__ = ["progress_bar", "progress_stream", "quiet_library_bars"]

T = TypeVar("T")

# transformers and huggingface_hub import tqdm.auto, which in a kernel without ipywidgets warns
# "IProgress not found" into the first cell that imports them. Their bars are not used here
# (layercollapse's own are text bars, above), so that one warning is silenced; imported by the
# package's __init__, this holds for every chapter.
warnings.filterwarnings("ignore", message="IProgress not found", category=TqdmWarning)


def _in_kernel() -> bool:
    return "ipykernel" in sys.modules and sys.__stderr__ is not None


def progress_stream() -> TextIO:
    """Where bars go: the process's stderr inside an IPython kernel (not the cell's output), else sys.stderr."""
    return sys.__stderr__ if _in_kernel() else sys.stderr


@contextmanager
def quiet_library_bars() -> Iterator[None]:
    """Inside a kernel, transformers' own bars (e.g. "Converting and de-quantizing GGUF tensors") are off:
    they write to the cell's stderr, i.e. into the rendered page. Elsewhere they show as usual."""
    if not _in_kernel():
        yield
        return
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:  # the GGUF loader's bar ignores that switch: it goes to the process's stderr like ours
        with redirect_stderr(progress_stream()):
            yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def progress_bar(iterable: Iterable[T], desc: str, enabled: bool, total: int | None = None) -> Iterator[T]:
    """``iterable`` with a text progress bar when ``enabled`` (the bar disappears when done)."""
    return iter(tqdm(iterable, desc=desc, total=total, disable=not enabled, leave=False, file=progress_stream()))
