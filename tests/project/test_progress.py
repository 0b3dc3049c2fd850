"""Progress bars stay out of a chapter's outputs: in a kernel they go to the process's own stderr."""

import io
import sys

from layercollapse import progress


def test_bar_in_a_kernel_writes_to_the_process_stderr_not_the_cell(monkeypatch):
    cell, process = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", cell)
    monkeypatch.setattr(sys, "__stderr__", process)
    monkeypatch.setitem(sys.modules, "ipykernel", sys)  # any module: "running inside a kernel"
    assert list(progress.progress_bar(range(3), "scoring", enabled=True)) == [0, 1, 2]
    assert cell.getvalue() == "" and "scoring" in process.getvalue()
    assert "IProgress" not in process.getvalue()


def test_bar_outside_a_kernel_writes_to_stderr_and_disabled_bars_write_nothing(monkeypatch):
    cell = io.StringIO()
    monkeypatch.setattr(sys, "stderr", cell)
    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    assert list(progress.progress_bar(iter("ab"), "tuned lens", enabled=False, total=2)) == ["a", "b"]
    assert cell.getvalue() == ""
    list(progress.progress_bar(range(2), "tuned lens", enabled=True))
    assert "tuned lens" in cell.getvalue()


def test_transformers_bars_are_off_while_loading_inside_a_kernel_and_restored_after(monkeypatch):
    from transformers.utils import logging as hf_logging

    hf_logging.enable_progress_bar()
    monkeypatch.setitem(sys.modules, "ipykernel", sys)
    with progress.quiet_library_bars():
        assert not hf_logging.is_progress_bar_enabled()
    assert hf_logging.is_progress_bar_enabled()
    monkeypatch.delitem(sys.modules, "ipykernel")
    with progress.quiet_library_bars():  # in a terminal they stay
        assert hf_logging.is_progress_bar_enabled()
