"""Editing chapters in JupyterLab (jupytext) writes back only what was edited.

jupytext converts ``.qmd`` <-> notebook with ``quarto convert``; the project's ``[tool.jupytext]``
(pyproject.toml) filters what must not be written back. The configuration is checked without
Quarto; the round trip through ``quarto convert``, and an edit through JupyterLab's contents API,
run where a ``quarto`` binary is on PATH and skip with that reason otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time

import nbformat
import pytest
from layercollapse.paths import project_root
from layercollapse.site.chapters import project_chapters

ROOT = project_root()
PAGES = [ROOT / "index.qmd", *project_chapters()]
needs_quarto = pytest.mark.skipif(shutil.which("quarto") is None,
                                  reason="no quarto on PATH: jupytext reads .qmd through `quarto convert`")


def notebook_as_jupyterlab_saves_it() -> nbformat.NotebookNode:
    """A chapter-like notebook carrying what JupyterLab and Quarto add: a kernelspec with the editing
    machine's path, jupytext's version block, language_info, and UI state on the cells."""
    notebook = nbformat.v4.new_notebook()
    notebook.metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3 (layercollapse)", "language": "python",
                       "path": "/home/someone/layercollapse/.venv/share/jupyter/kernels/python3"},
        "jupytext": {"text_representation": {"extension": ".qmd", "format_name": "quarto", "format_version": "1.0",
                                             "jupytext_version": "1.19.6"}},
        "language_info": {"name": "python", "version": "3.11.2"},
    }
    cell = nbformat.v4.new_code_cell("#| tags: [parameters]\nprofile = None", metadata={
        "tags": ["parameters"], "jupyter": {"source_hidden": True}, "scrolled": True, "collapsed": False,
        "execution": {"iopub.execute_input": "2026-12-01T10:00:00Z"}, "ExecuteTime": {"end_time": "x"}})
    notebook.cells = [nbformat.v4.new_raw_cell("---\ntitle: A chapter\n---"), cell]
    return notebook


def test_the_project_configures_jupytext_to_write_back_no_machine_or_ui_metadata(monkeypatch):
    import jupytext
    import jupytext.jupytext as jupytext_module
    from jupytext.config import load_jupytext_config

    config = load_jupytext_config(str(ROOT / "chapters"))
    assert config is not None, "no [tool.jupytext] in pyproject.toml"
    for key in ("-jupytext", "-kernelspec.path"):
        assert key in config.notebook_metadata_filter.split(",")
    handed_to_quarto = []
    monkeypatch.setattr(jupytext_module, "notebook_to_qmd", lambda notebook: handed_to_quarto.append(notebook) or "")
    jupytext.writes(notebook_as_jupyterlab_saves_it(), fmt="qmd", config=config)
    (written,) = handed_to_quarto  # what `quarto convert` turns into the .qmd
    assert written.metadata == {"kernelspec": {"name": "python3", "display_name": "Python 3 (layercollapse)",
                                               "language": "python"}}
    assert "/home/someone" not in json.dumps(written) and "jupytext_version" not in json.dumps(written)
    assert written.cells[1].metadata == {"tags": ["parameters"]}  # the parameters tag survives, UI state does not
    handed_to_quarto.clear()
    jupytext.writes(notebook_as_jupyterlab_saves_it(), fmt="qmd")  # without the project's configuration
    assert "path" in handed_to_quarto[0].metadata["kernelspec"]  # (what the configuration prevents)


@needs_quarto
@pytest.mark.slow
@pytest.mark.parametrize("path", PAGES, ids=lambda path: str(path.relative_to(ROOT)))
def test_a_jupytext_round_trip_leaves_every_page_byte_identical(path, tmp_path):
    import jupytext
    from jupytext.config import load_jupytext_config

    config = load_jupytext_config(str(path.parent))
    notebook = jupytext.read(path, fmt="qmd", config=config)
    copy = tmp_path / path.name
    jupytext.write(notebook, copy, fmt="qmd", config=config)
    assert copy.read_text() == path.read_text()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _request(url: str, token: str, method: str = "GET", body: dict | None = None) -> dict:
    """One call of the Jupyter server's REST API (JSON in, JSON out)."""
    from urllib.request import Request, urlopen

    data = None if body is None else json.dumps(body).encode()
    request = Request(url, data=data, method=method, headers={"Authorization": f"token {token}",
                                                              "Content-Type": "application/json"})
    with urlopen(request, timeout=120) as response:
        return json.loads(response.read() or b"{}")


@needs_quarto
@pytest.mark.slow
def test_an_edit_in_jupyterlab_changes_only_the_edited_cell(tmp_path):
    from urllib.error import URLError

    chapter = "chapters/04-phase-pruning.qmd"
    work = tmp_path / "site"
    shutil.copytree(ROOT, work, ignore=shutil.ignore_patterns(".git", ".venv", "_site*", "data"))
    port, token = _free_port(), "layercollapse-test"
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}", f"--IdentityProvider.token={token}",
         f"--ServerApp.root_dir={work}", "--ServerApp.contents_manager_class=jupytext.TextFileContentsManager"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path)})
    url = f"http://127.0.0.1:{port}/api/contents/{chapter}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                model = _request(url + "?type=notebook&content=1", token)
                break
            except URLError:
                assert server.poll() is None and time.monotonic() < deadline, "JupyterLab did not start"
                time.sleep(0.5)
        original = (work / chapter).read_text()
        markdown = next(cell for cell in model["content"]["cells"] if cell["cell_type"] == "markdown"
                        and "**Claims C4 and C5.**" in "".join(cell["source"]))
        markdown["source"] = "".join(markdown["source"]).replace("costs little (C4)", "costs little at first (C4)")
        _request(url, token, "PUT", {"type": "notebook", "format": "json", "content": model["content"]})
        assert (work / chapter).read_text() == original.replace("costs little (C4)", "costs little at first (C4)")
    finally:
        server.terminate()
        server.wait(timeout=30)
