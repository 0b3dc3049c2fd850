"""Editing chapters in JupyterLab (jupytext) writes back only what was edited.

jupytext converts ``.qmd`` <-> notebook with ``quarto convert``; the project's ``[tool.jupytext]``
(pyproject.toml) filters what must not be written back. The configuration is checked without
Quarto; the round trip through ``quarto convert``, and an edit through JupyterLab's contents API,
run where a ``quarto`` binary is on PATH and skip with that reason otherwise.

``quarto convert`` writes the front matter and every cell's ``#|`` options again (js-yaml's form), adds
``jupyter: python3`` and leaves one blank line between cells, so a page survives the round trip only in
that form. :func:`quarto_round_trip` does by hand what it does (read from quarto-cli 1.7's source), so
that every page is checked in that form without Quarto too.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
import yaml
from layercollapse.paths import project_root
from layercollapse.site.chapters import project_chapters

ROOT = project_root()
PAGES = project_chapters()  # every page of the site, index.qmd included (it is rendered last)
needs_quarto = pytest.mark.quarto  # jupytext reads .qmd through `quarto convert` (conftest skips without Quarto)
EDITED_CHAPTER = "chapters/04-phase-pruning.qmd"
EDIT = ("costs little (C4)", "costs little at first (C4)")  # in its "**Claims C4 and C5.**" paragraph
TOKEN = "layercollapse-test"


# --- quarto convert by hand ------------------------------------------------------------------
# quarto-cli 1.7.34: quartoMdToJupyter (src/core/jupyter/jupyter.ts) reads a .qmd into a notebook,
# jupyterNotebookToMarkdown (src/command/convert/jupyter.ts) writes it back; YAML goes through js-yaml 4.1's
# dump(value, {indent: 2, lineWidth: -1}) both ways; jupytext (jupytext/quarto.py, write()) ends the file with one
# newline.

_DEPRECATED_BOOLEANS = {"y", "Y", "yes", "Yes", "YES", "on", "On", "ON", "n", "N", "no", "No", "NO", "off", "Off",
                        "OFF"}
_BASE60 = re.compile(r"^[-+]?[0-9_]+(?::[0-9_]+)+(?:\.[0-9_]*)?$")
#: Plain scalars js-yaml's default schema would read as null, a boolean, a number, a timestamp or a merge key.
_NOT_A_STRING = [
    re.compile(r"^(?:~|null|Null|NULL|true|True|TRUE|false|False|FALSE|<<)$"),
    re.compile(r"^[-+]?(?:0b[01_]*[01][01_]*|0x[0-9a-fA-F_]*[0-9a-fA-F][0-9a-fA-F_]*|0o[0-7_]*[0-7][0-7_]*"
               r"|[0-9][0-9_]*|_[0-9_]*[0-9][0-9_]*)$"),
    re.compile(r"^(?:[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?(?:[eE][-+]?[0-9]+)?|\.[0-9_]+(?:[eE][-+]?[0-9]+)?"
               r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    re.compile(r"^[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(?:(?:[Tt]|[ \t]+)[0-9]{1,2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]*)?"
               r"(?:[ \t]*(?:Z|[-+][0-9]{1,2}(?::[0-9]{2})?))?)?$"),
]
_ESCAPES = {0: "\\0", 7: "\\a", 8: "\\b", 9: "\\t", 10: "\\n", 11: "\\v", 12: "\\f", 13: "\\r", 27: "\\e",
            34: '\\"', 92: "\\\\", 133: "\\N", 160: "\\_", 8232: "\\L", 8233: "\\P"}


def _printable(c: int | None) -> bool:
    return c is not None and (0x20 <= c <= 0x7E or (0xA1 <= c <= 0xD7FF and c not in (0x2028, 0x2029))
                              or (0xE000 <= c <= 0xFFFD and c != 0xFEFF) or 0x10000 <= c <= 0x10FFFF)


def _char_or_space(c: int | None) -> bool:
    return _printable(c) and c not in (0xFEFF, 13, 10)


def _plain_safe(c: int, before: int | None, in_block: bool) -> bool:
    """js-yaml's isPlainSafe: ``c`` (after ``before``) may stand inside a plain scalar."""
    char_or_space = _char_or_space(c)
    char = char_or_space and c not in (32, 9)
    return ((char_or_space and (in_block or chr(c) not in ",[]{}") and c != ord("#")
             and not (before == ord(":") and not char))
            or (_char_or_space(before) and before not in (32, 9) and c == ord("#")) or (before == ord(":") and char))


def _escaped(c: int) -> str:
    if c in _ESCAPES:
        return _ESCAPES[c]
    if _printable(c):
        return chr(c)
    return f"\\x{c:02X}" if c <= 0xFF else f"\\u{c:04X}" if c <= 0xFFFF else f"\\U{c:08X}"


def _scalar(text: str, level: int, single_line: bool, in_block: bool) -> str:
    """js-yaml's writeScalar: plain where that reads back as the same string, else single-quoted, double-quoted
    (unprintable characters) or a literal block (line breaks)."""
    if not text:
        return "''"
    if text in _DEPRECATED_BOOLEANS or _BASE60.match(text):
        return f"'{text}'"
    codes = [ord(c) for c in text]
    plain = (_printable(codes[0]) and codes[0] not in (0xFEFF, 32, 9) and text[0] not in "-?:,[]{}#&*!|=>'\"%@`"
             and codes[-1] not in (32, 9) and text[-1] != ":")
    line_break, before = False, None
    for c in codes:
        if c == 10 and not single_line:
            line_break = True
        elif not _printable(c):
            return '"' + "".join(_escaped(c) for c in codes) + '"'
        plain = plain and _plain_safe(c, before, in_block)
        before = c
    if not line_break:
        plain = plain and not any(pattern.match(text) for pattern in _NOT_A_STRING)
        return text if plain else "'" + text.replace("'", "''") + "'"
    indent = " " * (2 * max(1, level))
    chomp = "+" if text.endswith("\n\n") or text == "\n" else "" if text.endswith("\n") else "-"
    body = "".join(line if line == "\n" else indent + line for line in text.splitlines(keepends=True))
    return "|" + ("2" if re.match(r"\n* ", text) else "") + chomp + "\n" + body.removesuffix("\n")


def _yaml_node(value, level: int, block: bool, compact: bool, flow_level: int, key: bool = False) -> str:
    """js-yaml's writeNode for the values of front matter and cell options (mappings, lists, scalars)."""
    in_block, block = block, block and (flow_level < 0 or flow_level > level)
    if isinstance(value, dict) and block and value:
        return _block([(_yaml_node(k, level + 1, True, True, flow_level, key=True) + ":",
                        _yaml_node(v, level + 1, True, False, flow_level)) for k, v in value.items()], level, compact)
    if isinstance(value, list) and block and value:
        return _block([("-", _yaml_node(v, level + 1, True, True, flow_level)) for v in value], level, compact)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_yaml_node(k, level, False, False, flow_level)}: "
                               f"{_yaml_node(v, level, False, False, flow_level)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_yaml_node(v, level, False, False, flow_level) for v in value) + "]"
    if isinstance(value, str):
        return _scalar(value, level, key or -1 < flow_level <= level, in_block)
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return ".nan" if math.isnan(value) else ".inf" if value > 0 else "-.inf"
        return str(int(value)) if value.is_integer() else repr(value)
    raise TypeError(f"quarto_round_trip does not know how js-yaml writes {value!r}")


def _block(entries: list[tuple[str, str]], level: int, compact: bool) -> str:
    """js-yaml's writeBlockMapping and writeBlockSequence: one ``key:`` or ``-`` entry a line at ``level``'s indent
    (the first on the current line when ``compact``), a nested block right after it on the next lines."""
    return "".join(("" if compact and i == 0 else "\n" + "  " * level) + mark
                   + ("" if written.startswith("\n") else " ") + written for i, (mark, written) in enumerate(entries))


def dump_yaml(value: dict, flow_level: int = -1) -> str:
    """``js-yaml.dump(value, {indent: 2, lineWidth: -1, flowLevel})``: what Quarto's ``stringify`` writes."""
    return _yaml_node(value, 0, True, True, flow_level) + "\n"


class _YamlLoader(yaml.SafeLoader):
    """PyYAML reading as js-yaml does: only true/false are booleans (YAML 1.1's yes/no/on/off stay strings)."""


_YamlLoader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_YamlLoader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                                  list("tTfF"))


def _load_yaml(text: str) -> dict:
    return yaml.load(text, Loader=_YamlLoader) or {}


#: Cell options Quarto keeps as ``#|`` lines in the notebook (kJupyterCellOptionKeys, src/core/jupyter/jupyter.ts);
#: the others (``tags``) move to the cell's metadata and come back after them, in flow style.
QUARTO_CELL_OPTIONS = {
    "eval", "echo", "warning", "error", "output", "include", "label", "classes", "panel", "column", "fig-cap",
    "fig-subcap", "fig-scap", "fig-cap-location", "tbl-cap-location", "cap-location", "fig-column", "tbl-column",
    "fig-link", "fig-align", "fig-alt", "fig-env", "fig-pos", "lst-label", "lst-cap", "out-width", "out-height",
    "md-indent", "code-fold", "code-line-numbers", "code-summary", "code-overflow", "html-table-processing",
    "layout-align", "layout-valign", "layout-ncol", "layout-nrow", "layout", "tbl-cap", "tbl-colwidths"}
_OPTION = re.compile(r"^#\s*\| ?")
_PYTHON_CELL = re.compile(r"^(\s*)(```+)\s*\{python( *[ ,].*)?\}\s*$")
_FENCE = re.compile(r"^\s*```")
_YAML_START = re.compile(r"^---[ \t]*$")
_YAML_END = re.compile(r"^(?:---|\.\.\.)[ \t]*$")


@dataclasses.dataclass
class NotebookCell:
    """A cell of the notebook ``quarto convert`` makes of a page: ``markdown``, ``code`` or ``raw``, its lines."""

    kind: str
    lines: list[str]
    metadata: dict = dataclasses.field(default_factory=dict)


def _trimmed(lines: list[str]) -> list[str]:
    """``lines`` without leading and trailing blank lines (trimEmptyLines)."""
    kept = [i for i, line in enumerate(lines) if line.strip()]
    return lines[kept[0]:kept[-1] + 1] if kept else []


def _split_options(lines: list[str]) -> tuple[dict, list[str]]:
    """(the cell's ``#|`` options, its other lines) (partitionCellOptions)."""
    n_options = next((i for i, line in enumerate(lines) if not _OPTION.match(line)), len(lines))
    return _load_yaml("\n".join(_OPTION.sub("", line, count=1) for line in lines[:n_options])), lines[n_options:]


def _option_lines(options: dict, flow_level: int = -1) -> list[str]:
    """``options`` as ``#|`` lines (jupyterCellOptionsAsComment)."""
    return [f"#| {line}" for line in _trimmed(dump_yaml(options, flow_level).split("\n"))] if options else []


def qmd_to_notebook(text: str) -> list[NotebookCell]:
    """The cells ``quarto convert`` makes of a ``.qmd`` (quartoMdToJupyter). A closing ``---`` followed by a blank
    line does not end the front matter there (quarto-cli issue 8998): the front matter stays in the first markdown
    cell."""
    cells: list[NotebookCell] = []
    buffer: list[str] = []

    def flush(kind: str, front_matter: bool = False) -> None:
        lines = buffer[1:] if buffer[:1] == [""] else buffer[:]
        lines = lines[:-1] if lines[-1:] == [""] else lines
        metadata = {}
        if kind == "raw" and front_matter:
            fields = _load_yaml("\n".join(lines[1:-1]))
            if "jupyter" in fields:  # already in the notebook's metadata
                del fields["jupyter"]
                lines = ["---", *_trimmed(dump_yaml(fields).split("\n")), "---"] if fields else []
        elif kind == "code":
            options, body = _split_options(lines)
            metadata = {key: options.pop(key) for key in list(options) if key not in QUARTO_CELL_OPTIONS}
            lines = _option_lines(options) + body if metadata else lines
        if lines := _trimmed(lines):
            cells.append(NotebookCell(kind, lines, metadata))
        buffer.clear()

    lines = re.split(r"\r?\n", text)
    front_matter_read = in_yaml = in_cell = in_code = False
    close = re.compile("```")
    for i, line in enumerate(lines):
        following = lines[i + 1].strip() if i + 1 < len(lines) else None
        if _YAML_START.match(line) and not in_cell and not in_code and following != "":
            if in_yaml:
                buffer.append(line)
                flush("raw", front_matter=not front_matter_read)
                front_matter_read = True
            else:
                flush("markdown")
                buffer.append(line)
            in_yaml = not in_yaml
        elif not in_cell and (opening := _PYTHON_CELL.match(line)):
            assert not opening[1], "quarto_round_trip does not do indented cells"
            flush("markdown")
            in_cell, close = True, re.compile("^" + opening[2] + r"\s*$")
        elif in_cell and close.match(line):
            flush("code")
            in_cell = False
        else:
            in_code = in_code or (not in_cell and bool(_FENCE.match(line)))
            buffer.append(line)
    flush("markdown")
    top = "\n".join(cells[0].lines).strip() if cells and cells[0].kind == "markdown" else ""
    if top.startswith("---") and top.endswith("---") and _load_yaml(top[3:-3]) == {"jupyter": "python3"}:
        del cells[0]  # jupytext drops a header that only repeats the kernel (jupytext/quarto.py, qmd_to_notebook)
    return cells


def _front_matter(lines: list[str]) -> tuple[str, list[str]] | None:
    """(its YAML, the lines after it) of a cell that opens with front matter, else None (partitionYamlFrontMatter)."""
    lines = "\n".join(lines).lstrip().split("\n")
    if len(lines) < 3 or not _YAML_START.match(lines[0]) or not lines[1].strip() or _YAML_END.match(lines[1]):
        return None
    end = next((i for i in range(1, len(lines)) if _YAML_END.match(lines[i])), None)
    return None if end is None else ("\n".join(lines[1:end]), lines[end + 1:])


def _ending_newlines(pieces: list[str]) -> int:
    """How many newlines end the text written so far (getEndingNewlineCount)."""
    count = 0
    for piece in reversed(pieces):
        count += len(piece) - len(piece.rstrip("\n"))
        if piece.strip("\n"):
            break
    return count


def notebook_to_qmd(cells: list[NotebookCell], kernel: str = "python3") -> str:
    """The ``.qmd`` ``quarto convert`` writes of a notebook (jupyterNotebookToMarkdown), as jupytext saves it.
    The cells' metadata is in the order nbformat writes it (sorted)."""
    front = next((cell for cell in cells if cell.kind != "code" and _front_matter(cell.lines)), None)
    if front is not None:  # fixupFrontMatter
        front.kind = "raw"
        assert "title" in _load_yaml(_front_matter(front.lines)[0]), "quarto_round_trip does not make titles"
    pieces: list[str] = []
    front_matter = None
    for i, cell in enumerate(cells):
        if i > 0 and _ending_newlines(pieces) < 2:
            pieces.append("\n\n")
        if cell.kind == "raw" and front_matter is None:
            if (parts := _front_matter(cell.lines)) is not None:
                front_matter, after = parts
                pieces.append("\n" + "\n".join(after))
        elif cell.kind == "code":
            fence = "`" * (max([2, *(len(line) - len(line.lstrip("`")) for line in cell.lines)]) + 1)
            options, body = _split_options(cell.lines)
            lines = _option_lines(options) + _option_lines(dict(sorted(cell.metadata.items())), flow_level=1) + body
            pieces.append("".join(f"{line}\n" for line in [fence + "{python}", *lines, fence]))
        else:
            pieces.append("".join(f"{line}\n" for line in _split_options(cell.lines)[1]))
        if i > 0 or front_matter is None:
            pieces.append("\n")
    fields = {**(_load_yaml(front_matter) if front_matter else {}), "jupyter": kernel}
    text = "---\n" + dump_yaml(fields) + "---" + ("" if front_matter else "\n\n") + "".join(pieces)
    text = "\n".join(text.splitlines())
    return text if text.endswith("\n") else text + "\n"


def quarto_round_trip(text: str) -> str:
    """A page opened and saved again in JupyterLab (jupytext, ``quarto convert`` both ways), without Quarto."""
    return notebook_to_qmd(qmd_to_notebook(text))


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


def test_every_page_is_checked_once():
    names = [str(path.relative_to(ROOT)) for path in PAGES]
    assert len(names) == len(set(names)) and "index.qmd" in names


#: A page in the form the site's pages had, and what a save from JupyterLab (Quarto 1.7.34, jupytext) makes of it:
#: the real round trip re-quoted the front matter and options, added `jupyter: python3` and dropped blank lines.
FOUND_BY_A_REAL_ROUND_TRIP = (
    '''---
title: "Why pruned LLMs collapse: a reproduction"
description: "The referee's controls."
execute:
  freeze: false  # a comment
---

Prose.


```{python}
#| tags: [parameters]
#| include: false
profile = None
```

```{python}
#| label: fig-x
#| fig-cap: "Accuracy (k = 0: intact)."
#| fig-alt: "A line chart."
x = 1
```
''', '''---
title: 'Why pruned LLMs collapse: a reproduction'
description: The referee's controls.
execute:
  freeze: false
jupyter: python3
---

Prose.

```{python}
#| include: false
#| tags: [parameters]
profile = None
```

```{python}
#| label: fig-x
#| fig-cap: 'Accuracy (k = 0: intact).'
#| fig-alt: A line chart.
x = 1
```
''')


def test_the_hand_made_round_trip_does_what_quarto_convert_did():
    """Front matter and ``#|`` options written again by js-yaml (quotes only where needed, comments gone, tags
    after the other options), ``jupyter: python3`` added, one blank line between cells; and then nothing more."""
    page, saved = FOUND_BY_A_REAL_ROUND_TRIP
    assert quarto_round_trip(page) == saved
    assert quarto_round_trip(saved) == saved
    assert dump_yaml({"a": "yes", "b": "1.5", "c": "x: y", "d": "it's", "e": ["p", "q"], "f": "tab\there"}) == (
        "a: 'yes'\nb: '1.5'\nc: 'x: y'\nd: it's\ne:\n  - p\n  - q\nf: \"tab\\there\"\n")


@pytest.mark.parametrize("path", PAGES, ids=lambda path: str(path.relative_to(ROOT)))
def test_a_page_is_written_as_quarto_convert_writes_it_back(path):
    """Quarto-free twin of the round trip below: opening and saving a page in JupyterLab changes no byte."""
    text = path.read_text()
    saved = quarto_round_trip(text)
    changes = [line for line in difflib.unified_diff(text.splitlines(), saved.splitlines(), lineterm="", n=0)
               if line.startswith(("-", "+", "@@")) and not line.startswith(("---", "+++"))]
    assert saved == text, f"a save from JupyterLab would rewrite {path.name}:\n" + "\n".join(changes[:12])


def test_an_edit_of_one_cell_changes_only_that_cell():
    """A markdown cell edited in the notebook comes back as exactly that edit (Quarto-free twin of the JupyterLab
    test below)."""
    original = (ROOT / EDITED_CHAPTER).read_text()
    cells = qmd_to_notebook(original)
    (edited,) = [cell for cell in cells if cell.kind != "code" and "**Claims C4 and C5.**" in "\n".join(cell.lines)]
    edited.lines = [line.replace(*EDIT) for line in edited.lines]
    assert notebook_to_qmd(cells) == original.replace(*EDIT) != original


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


def _request(url: str, token: str = TOKEN, method: str = "GET", body: dict | None = None) -> dict:
    """One call of the Jupyter server's REST API (JSON in, JSON out)."""
    from urllib.request import Request, urlopen

    data = None if body is None else json.dumps(body).encode()
    request = Request(url, data=data, method=method, headers={"Authorization": f"token {token}",
                                                              "Content-Type": "application/json"})
    with urlopen(request, timeout=120) as response:
        return json.loads(response.read() or b"{}")


@contextlib.contextmanager
def jupyterlab(root_dir: Path, scratch: Path, timeout_s: float = 120) -> Iterator[str]:
    """JupyterLab serving ``root_dir`` through jupytext's contents manager; yields its base URL once it answers.

    It starts as root too (CI and the project's machines): jupyter_server refuses root unless allowed, and allowing
    it changes nothing else (``ServerApp.allow_root`` only skips that check in ``start_app``). Its output goes to
    ``scratch/jupyterlab.log``, shown when it does not start.
    """
    from urllib.error import URLError

    log = scratch / "jupyterlab.log"
    port = _free_port()
    command = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root", f"--port={port}",
               f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={root_dir}",
               "--ServerApp.contents_manager_class=jupytext.TextFileContentsManager"]
    with log.open("w") as output:
        server = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT,
                                  env={**os.environ, "JUPYTER_CONFIG_DIR": str(scratch / "config"),
                                       "JUPYTER_RUNTIME_DIR": str(scratch / "runtime")})
    base = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                _request(base + "api/status")
                break
            except URLError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not start (exit code {server.poll()}); its log:\n"
                                f"{log.read_text()[-3000:]}")
                time.sleep(0.5)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.slow
def test_jupyterlab_starts_with_the_jupytext_contents_manager(tmp_path):
    """As root (CI and the project's machines) or not; no Quarto needed until a .qmd is opened."""
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "page.qmd").write_text("---\ntitle: A page\n---\n")
    with jupyterlab(tmp_path / "site", tmp_path) as base:
        listing = _request(base + "api/contents?content=1")
    assert [item["name"] for item in listing["content"]] == ["page.qmd"]


@needs_quarto
@pytest.mark.slow
def test_an_edit_in_jupyterlab_changes_only_the_edited_cell(tmp_path):
    work = tmp_path / "site"
    shutil.copytree(ROOT, work, ignore=shutil.ignore_patterns(".git", ".venv", "_site*", "data"))
    with jupyterlab(work, tmp_path) as base:
        url = f"{base}api/contents/{EDITED_CHAPTER}"
        model = _request(url + "?type=notebook&content=1")
        original = (work / EDITED_CHAPTER).read_text()
        markdown = next(cell for cell in model["content"]["cells"] if cell["cell_type"] == "markdown"
                        and "**Claims C4 and C5.**" in "".join(cell["source"]))
        markdown["source"] = "".join(markdown["source"]).replace(*EDIT)
        _request(url, method="PUT", body={"type": "notebook", "format": "json", "content": model["content"]})
    assert (work / EDITED_CHAPTER).read_text() == original.replace(*EDIT)
