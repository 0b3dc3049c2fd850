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
from typing import TextIO, TypeVar

from tqdm.std import TqdmWarning, tqdm

__all__ = ["progress_bar", "progress_stream"]

T = TypeVar("T")

# transformers and huggingface_hub import tqdm.auto, which in a kernel without ipywidgets warns
# "IProgress not found" into the first cell that imports them. Their bars are not used here
# (layercollapse's own are text bars, above), so that one warning is silenced; imported by the
# package's __init__, this holds for every chapter.
warnings.filterwarnings("ignore", message="IProgress not found", category=TqdmWarning)


def progress_stream() -> TextIO:
    """Where bars go: the process's stderr inside an IPython kernel (not the cell's output), else sys.stderr."""
    in_kernel = "ipykernel" in sys.modules and sys.__stderr__ is not None
    return sys.__stderr__ if in_kernel else sys.stderr


def progress_bar(iterable: Iterable[T], desc: str, enabled: bool, total: int | None = None) -> Iterator[T]:
    """``iterable`` with a text progress bar when ``enabled`` (the bar disappears when done)."""
    return iter(tqdm(iterable, desc=desc, total=total, disable=not enabled, leave=False, file=progress_stream()))
