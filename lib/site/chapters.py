"""Executing the site's chapters the way Quarto's Jupyter engine does, without Quarto.

A ``.qmd`` is YAML front matter, markdown, and ```` ```{python} ```` cells whose
leading ``#|`` lines are YAML cell options. :func:`execute_chapter` turns it into a
notebook, injects papermill-style parameters after the cell tagged ``parameters``
(as ``quarto render -P name:value`` does), and runs it in a ``python3`` kernel
started in the chapter's folder with ``QUARTO_PROFILE`` set (``execute-dir: file``).
:func:`render_all` renders the site with Quarto when it is installed, else executes
every chapter and writes the notebooks under ``_site_notebooks/<profile>/``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from layercollapse import settings
from layercollapse.paths import project_root

QUARTO_INSTALL_HINT = (
    "Quarto is not installed, so the chapters were executed through the Jupyter kernel only (no HTML): open the "
    "notebooks in {notebooks} with `.venv/bin/jupyter lab {notebooks}`. For the site, install Quarto "
    "(https://quarto.org/docs/get-started/, or `conda install -c conda-forge quarto`) and run "
    "`python -m layercollapse render --profile {profile}` again."
)
NOTEBOOKS_DIR = "_site_notebooks"
FREEZE_PROFILE = "default"  # the profile that owns _freeze/ (freeze: auto); others render in ISOLATED_DIR
ISOLATED_DIR = "_render"
DEFAULT_CELL_TIMEOUT_S = 1800  # per cell; LAYERCOLLAPSE_CELL_TIMEOUT overrides

#: Seconds each page of the default profile took to execute through a Jupyter kernel without Quarto, on 2 cores
#: (`render --profile default` on the committed store, measured 2026-12-07 on an Intel Xeon: 4 min 28 s in all):
#: what ``reproduce --audit`` counts for executing a chapter again to decide its claims.
CHAPTER_SECONDS = {
    "chapters/01-cliff-edge.qmd": 11.0, "chapters/02-decision-dynamics.qmd": 10.0,
    "chapters/03-option-frequency.qmd": 9.0, "chapters/04-phase-pruning.qmd": 12.0,
    "chapters/05-representation-similarity.qmd": 6.0, "chapters/06-statistics-and-scale.qmd": 7.0,
    "chapters/07-probes.qmd": 5.0, "chapters/08-random-controls.qmd": 11.0, "chapters/09-noise-sensitivity.qmd": 6.0,
    "chapters/10-finetune-recovery.qmd": 6.0, "chapters/11-pruned-dynamics.qmd": 132.0,
    "chapters/methods.qmd": 5.0, "index.qmd": 41.0,
}

_FENCE_OPEN = re.compile(r"^(?P<fence>`{3,})\s*\{(?P<engine>[A-Za-z0-9_]+)(?P<rest>[^}]*)\}\s*$")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
#: An inline expression, `` `{python} expr` ``, exactly as Quarto finds it (``core/execute-inline.ts``).
_INLINE = re.compile(r"(^|[^`])`\{python\}[ \t]([^`]+)`")
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()>#+,\-.!])")  # Quarto's class: its `+-.` is the range + , - .


class ChapterError(RuntimeError):
    """A chapter failed to parse or a cell raised while executing."""


@dataclass(frozen=True)
class Cell:
    """One block of a ``.qmd``.

    Attributes:
        kind: ``markdown`` or ``code`` (a ```{python} cell).
        source: text without the ``#|`` option lines.
        options: the ``#|`` cell options (``label``, ``fig-cap``, ``tags``, ...).
        line: 1-based line of the block's first line in the ``.qmd``.
        header: the cell's ``#|`` option lines, verbatim.
    """

    kind: str
    source: str
    options: dict[str, Any] = field(default_factory=dict)
    line: int = 1
    header: str = ""  # the ``#|`` lines as written, kept in the notebook cell like Quarto does

    @property
    def tags(self) -> list[str]:
        tags = self.options.get("tags", [])
        return [tags] if isinstance(tags, str) else list(tags)

    @property
    def label(self) -> str | None:
        return self.options.get("label")


@dataclass(frozen=True)
class Chapter:
    """A parsed ``.qmd``: its path, front matter and cells in order."""

    path: Path
    front_matter: dict[str, Any]
    cells: tuple[Cell, ...]

    @property
    def code_cells(self) -> list[Cell]:
        return [cell for cell in self.cells if cell.kind == "code"]


def _parse_options(lines: list[str], where: str) -> tuple[dict[str, Any], list[str]]:
    """Split leading ``#|`` lines off a cell; return (options, remaining lines)."""
    n_option_lines = 0
    while n_option_lines < len(lines) and lines[n_option_lines].lstrip().startswith("#|"):
        n_option_lines += 1
    text = "\n".join(line.lstrip()[2:] for line in lines[:n_option_lines])
    try:
        options = (yaml.safe_load(text) or {}) if text.strip() else {}
    except yaml.YAMLError as error:
        raise ChapterError(f"{where}: cell options are not valid YAML: {error}") from error
    if not isinstance(options, dict):
        raise ChapterError(f"{where}: cell options must be `#| key: value` lines, got {options!r}")
    return options, lines[n_option_lines:]


def parse_qmd(path: str | Path) -> Chapter:
    """Parse a ``.qmd`` into front matter and markdown / python cells.

    Code blocks of other engines (``{ojs}``, ``{mermaid}``) stay in the markdown.
    """
    path = Path(path)
    lines = path.read_text().splitlines()
    front_matter: dict[str, Any] = {}
    start = 0
    if lines and lines[0].strip() == "---":
        end = next((i for i in range(1, len(lines)) if lines[i].strip() in ("---", "...")), None)
        if end is None:
            raise ChapterError(f"{path}: front matter opened with '---' on line 1 is never closed")
        try:
            front_matter = yaml.safe_load("\n".join(lines[1:end])) or {}
        except yaml.YAMLError as error:
            raise ChapterError(f"{path}: front matter is not valid YAML: {error}") from error
        start = end + 1
    cells: list[Cell] = []
    markdown: list[str] = []
    markdown_line = start + 1
    i = start
    while i < len(lines):
        match = _FENCE_OPEN.match(lines[i])
        if not match or match["engine"] != "python":
            markdown.append(lines[i])
            i += 1
            continue
        fence = match["fence"]
        close = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == fence), None)
        if close is None:
            raise ChapterError(f"{path}:{i + 1}: python cell opened here is never closed with {fence}")
        if "".join(markdown).strip():
            cells.append(Cell("markdown", "\n".join(markdown).strip("\n"), line=markdown_line))
        block = lines[i + 1:close]
        options, body = _parse_options(block, f"{path}:{i + 1}")
        header = "\n".join(block[:len(block) - len(body)])
        cells.append(Cell("code", "\n".join(body).strip("\n"), options, line=i + 1, header=header))
        markdown, markdown_line, i = [], close + 2, close + 1
    if "".join(markdown).strip():
        cells.append(Cell("markdown", "\n".join(markdown).strip("\n"), line=markdown_line))
    return Chapter(path, front_matter, tuple(cells))


def parameters_source(parameters: dict[str, Any]) -> str:
    """Source of the injected-parameters cell: one ``name = repr(value)`` line each."""
    lines = ["# Injected Parameters"]
    for name, value in parameters.items():
        if not name.isidentifier():
            raise ChapterError(f"parameter name {name!r} is not a Python identifier")
        lines.append(f"{name} = {value!r}")
    return "\n".join(lines)


def to_notebook(chapter: Chapter, parameters: dict[str, Any] | None = None):
    """Build an nbformat v4 notebook of ``chapter``, parameters injected after the ``parameters`` cell.

    Cell options stay in the source as ``#|`` lines (as Quarto keeps them); ``tags``
    go to cell metadata; ``eval: false`` cells become raw cells; ``error: true``
    cells get the ``raises-exception`` tag so execution continues past them.
    """
    import nbformat.v4 as nbf

    cells = []
    injected = False
    for cell in chapter.cells:
        if cell.kind == "markdown":
            cells.append(nbf.new_markdown_cell(cell.source, metadata={"qmd_line": cell.line}))
            continue
        option_lines = cell.header + "\n" if cell.header else ""
        tags = cell.tags + (["raises-exception"] if cell.options.get("error") is True else [])
        metadata = {"tags": tags, "qmd_line": cell.line} if tags else {"qmd_line": cell.line}
        if cell.options.get("eval") is False:
            cells.append(nbf.new_raw_cell(option_lines + cell.source, metadata=metadata))
        else:
            cells.append(nbf.new_code_cell(option_lines + cell.source, metadata=metadata))
        if parameters and "parameters" in cell.tags and not injected:
            cells.append(nbf.new_code_cell(parameters_source(parameters), metadata={"tags": ["injected-parameters"]}))
            injected = True
    if parameters and not injected:  # papermill's rule: no parameters cell -> inject at the top
        cells.insert(0, nbf.new_code_cell(parameters_source(parameters), metadata={"tags": ["injected-parameters"]}))
    notebook = nbf.new_notebook(cells=cells)
    notebook.metadata.update({
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
        "quarto": {"front_matter": chapter.front_matter, "source": str(chapter.path)},
    })
    return notebook


def inline_expressions(markdown: str) -> list[str]:
    """The expressions of the `` `{python} expr` `` inline code in ``markdown``, in order."""
    return [match[2].strip() for match in _INLINE.finditer(markdown)]


def _inline_text(result: dict[str, Any]) -> str:
    """Markdown of one evaluated inline expression, by Quarto's rule: ``text/markdown`` as is, ``text/plain``
    with the quotes of a string repr removed and its Markdown characters escaped."""
    data = result.get("data", {})
    if "text/markdown" in data:
        return str(data["text/markdown"])
    text = str(data.get("text/plain", ""))
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return _MARKDOWN_SPECIAL.sub(r"\\\1", text[1:-1].replace("\\", "\\\\"))
    return text


def resolve_inline(markdown: str, results: dict[str, dict[str, Any]]) -> str:
    """``markdown`` with each inline expression replaced by its evaluated result (by expression text)."""
    def replace(match: re.Match) -> str:
        result = results.get(match[2].strip())
        return match[0] if result is None else match[1] + _inline_text(result)

    return _INLINE.sub(replace, markdown)


def _quarto_client_class():
    """nbclient's client, evaluating each markdown cell's inline expressions in order as Quarto does: an empty
    execute request carrying them as ``user_expressions``; the results go to ``cell.metadata.user_expressions``."""
    from nbclient import NotebookClient

    class QuartoClient(NotebookClient):
        async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
            expressions = inline_expressions(cell.source) if cell.cell_type == "markdown" else []
            if not expressions:
                return await super().async_execute_cell(cell, cell_index, execution_count, store_history)
            requested = {str(i): expression for i, expression in enumerate(expressions)}
            msg_id = self.kc.execute("", user_expressions=requested)
            reply = await self.async_wait_for_reply(msg_id, cell)
            results = reply["content"].get("user_expressions", {})
            cell.metadata["user_expressions"] = [
                {"expression": expression, "result": results.get(i, {})} for i, expression in requested.items()]
            return cell

    return QuartoClient


KERNEL_EXIT_WAIT_S = 30.0
"""Seconds a kernel gets to exit after a shutdown request before it is terminated (half) and killed (all)."""


def _kernel_manager_class():
    """jupyter_client's async kernel manager, made quiet on a healthy run.

    * CurveZMQ transport encryption wherever the kernelspec declares it (``metadata.supported_encryption``, as
      ipykernel's does) and pyzmq has it, so that the kernel does not log its warning that it "is running over TCP
      without encryption" at every start.
    * A graceful shutdown is a ``shutdown_request`` alone: jupyter_client sends SIGINT first, and a kernel that gets
      it while it is still finishing the last request logs ``ERROR | KeyboardInterrupt caught in kernel`` on a run
      that went well. A kernel that does not exit on the request is still terminated, then killed
      (``finish_shutdown``), and ``now=True`` (or a restart) keeps jupyter_client's own path.
    * A kernel that is exiting gets ``KERNEL_EXIT_WAIT_S`` to do so (half before SIGTERM, half before SIGKILL), not
      jupyter_client's 5 s: on a loaded 2-core machine a healthy kernel's exit (atexit handlers, torch's threads) took
      longer than 2.5 s and was terminated, which is noise on a run that went well.
    """
    import zmq
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import default

    class QuietKernelManager(AsyncKernelManager):
        @default("shutdown_wait_time")
        def _exit_wait(self) -> float:  # a default: a user's jupyter config still sets it
            return KERNEL_EXIT_WAIT_S

        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            if self.has_trait("transport_encryption") and zmq.has("curve"):
                self.transport_encryption = "auto"  # provisions keys only where the kernelspec declares support

        async def shutdown_kernel(self, now: bool = False, restart: bool = False) -> None:
            if now or restart or not self.owns_kernel or not self.has_kernel:
                await super().shutdown_kernel(now=now, restart=restart)
                return
            self.shutting_down = True
            self.stop_restarter()
            await self.request_shutdown()
            await self.finish_shutdown()
            await self.cleanup_resources()

    return QuietKernelManager


@dataclass
class CellSummary:
    """What one executed code cell produced.

    Attributes:
        index: cell index in the notebook.
        label: its ``label`` option, if any.
        options: its cell options.
        mime_types: mime types of its display outputs, in order.
        errors: ``ename: evalue`` of each error output.
        outputs: the raw nbformat outputs.
    """

    index: int
    label: str | None
    options: dict[str, Any]
    mime_types: list[str]
    errors: list[str]
    outputs: list[dict[str, Any]]


@dataclass
class ExecutedChapter:
    """An executed chapter: the notebook and a per-code-cell summary."""

    path: Path
    profile: str
    notebook: Any
    cells: list[CellSummary]

    @property
    def outputs(self) -> list[dict[str, Any]]:
        return [output for cell in self.cells for output in cell.outputs]

    @property
    def markdown(self) -> list[str]:
        """Every markdown cell with its inline expressions replaced by their values, as Quarto renders them."""
        return [resolve_inline(cell.source, {e["expression"]: e["result"] for e in cell.metadata.get("user_expressions", [])})
                for cell in self.notebook.cells if cell.cell_type == "markdown"]


def _cell_options(source: str) -> dict[str, Any]:
    options, _ = _parse_options(source.splitlines(), "notebook cell")
    return options


def _summarise(notebook) -> list[CellSummary]:
    summaries = []
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        options = _cell_options(cell.source)
        mime_types = [m for out in cell.get("outputs", []) for m in out.get("data", {})]
        errors = [f"{out['ename']}: {out['evalue']}" for out in cell.get("outputs", []) if out.output_type == "error"]
        summaries.append(CellSummary(index, options.get("label"), options, mime_types, errors, list(cell.get("outputs", []))))
    return summaries


def _failure(chapter: Chapter, notebook, index: int) -> ChapterError:
    """ChapterError naming the chapter, the cell (label, .qmd line) and the traceback."""
    cell = notebook.cells[index]
    options = _cell_options(cell.source)
    error = next(out for out in cell.outputs if out.output_type == "error")
    traceback = _ANSI.sub("", "\n".join(error.get("traceback", [])))
    where = f"cell {index}" + (f" (label '{options['label']}')" if options.get("label") else "")
    line = cell.metadata.get("qmd_line")
    where += f", {chapter.path.name} line {line}" if line else ""
    return ChapterError(
        f"chapter {chapter.path} failed in {where}: {error.ename}: {error.evalue}\n"
        f"--- cell source ---\n{cell.source}\n--- traceback ---\n{traceback}"
    )


def _inline_failure(chapter: Chapter, notebook) -> ChapterError | None:
    """ChapterError for the first inline expression that raised, naming the chapter, its line and the error."""
    for cell in notebook.cells:
        for evaluated in cell.metadata.get("user_expressions", []):
            result = evaluated["result"]
            if result.get("status") != "ok":
                expression = evaluated["expression"]
                lines = chapter.path.read_text().splitlines()
                line = next((n for n, text in enumerate(lines, 1) if "{python}" in text and expression in text),
                            cell.metadata.get("qmd_line"))
                return ChapterError(
                    f"chapter {chapter.path} failed in the inline expression `{{python}} {expression}` "
                    f"at {chapter.path.name} line {line}: {result.get('ename', 'no result')}: "
                    f"{result.get('evalue', 'the kernel returned nothing for it')}")
    return None


def execute_chapter(
    path: str | Path,
    profile: str = "default",
    parameters: dict[str, Any] | None = None,
    timeout: int | None = None,
    kernel_name: str = "python3",
    env: dict[str, str] | None = None,
) -> ExecutedChapter:
    """Execute a ``.qmd`` through a Jupyter kernel as Quarto would.

    Args:
        path: the ``.qmd``.
        profile: value of ``QUARTO_PROFILE`` in the kernel's environment.
        parameters: overrides injected after the ``parameters``-tagged cell.
        timeout: seconds per cell (None: ``$LAYERCOLLAPSE_CELL_TIMEOUT`` or 1800).
        kernel_name: kernelspec; ``python3`` runs this interpreter's ipykernel.
        env: extra environment variables for the kernel.

    Returns:
        the executed notebook and a per-cell summary.

    Raises:
        ChapterError: a cell raised (not tagged ``error: true``); the message names the
            chapter, the cell's index, label and ``.qmd`` line, and holds the traceback. Or an inline
            expression (`` `{python} expr` ``, evaluated where its paragraph stands) raised.
    """
    from nbclient.exceptions import CellExecutionError

    chapter = parse_qmd(path)
    notebook = to_notebook(chapter, parameters)
    timeout = timeout or settings.cell_timeout(DEFAULT_CELL_TIMEOUT_S)
    kernel_env = {**os.environ, **(env or {}), settings.QUARTO_PROFILE.name: profile}
    client = _quarto_client_class()(
        notebook, timeout=timeout, kernel_name=kernel_name, allow_errors=False,
        kernel_manager_class=_kernel_manager_class(),
        resources={"metadata": {"path": str(chapter.path.parent.resolve())}},
    )
    try:
        client.execute(env=kernel_env)
    except CellExecutionError:
        failed = next(
            (i for i, cell in enumerate(notebook.cells)
             if cell.cell_type == "code" and "raises-exception" not in cell.metadata.get("tags", [])
             and any(out.output_type == "error" for out in cell.get("outputs", []))),
            None,
        )
        if failed is None:
            raise
        raise _failure(chapter, notebook, failed) from None
    if (inline_error := _inline_failure(chapter, notebook)) is not None:
        raise inline_error
    return ExecutedChapter(chapter.path, profile, notebook, _summarise(notebook))


def project_config(root: Path | None = None) -> dict[str, Any]:
    """The parsed ``_quarto.yml`` of the project."""
    return yaml.safe_load(((root or project_root()) / "_quarto.yml").read_text())


def project_chapters(root: Path | None = None) -> list[Path]:
    """The ``.qmd`` files listed in ``project: render`` of ``_quarto.yml``, in order."""
    root = root or project_root()
    return [root / name for name in project_config(root)["project"]["render"]]


def _as_list(value: str | list[str] | None) -> list[str]:
    return [value] if isinstance(value, str) else list(value or [])


def site_sources(root: Path) -> list[Path]:
    """What Quarto needs to render the site, relative to ``root``: its config, pages, pre-render script, the
    SCSS layers of its HTML theme and its favicon."""
    config = project_config(root)
    theme = _as_list(config.get("format", {}).get("html", {}).get("theme"))
    names = ["_quarto.yml", *(p.name for p in sorted(root.glob("_quarto-*.yml"))), *config["project"]["render"],
             *_as_list(config["project"].get("pre-render")), *(layer for layer in theme if layer.endswith(".scss")),
             *_as_list(config.get("website", {}).get("favicon"))]
    return [Path(name) for name in names]


def render_isolated(quarto: str, profile: str, root: Path, env: dict[str, str]) -> Path:
    """Render ``profile`` in a copy of the site's sources (``_render/<profile>/``) and move its output
    folder (e.g. ``_site-test/``) into ``root``.

    Quarto keeps one ``_freeze/`` per project, and rendering a profile with ``freeze: false`` deletes
    the frozen results of every page it renders; the copy has its own, so the default profile's
    ``_freeze/`` is never touched. Chapters find the results store and verdicts through the library.

    Returns:
        the output folder in ``root``.
    """
    scratch = root / ISOLATED_DIR / profile
    shutil.rmtree(scratch, ignore_errors=True)
    for source in site_sources(root):
        (scratch / source).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / source, scratch / source)
    subprocess.run([quarto, "render", "--profile", profile], cwd=scratch, check=True, env={**os.environ, **env})
    merged = yaml.safe_load((root / f"_quarto-{profile}.yml").read_text()) or {}
    output = merged.get("project", {}).get("output-dir") or project_config(root)["project"].get("output-dir", "_site")
    target = root / output
    shutil.rmtree(target, ignore_errors=True)
    shutil.move(str(scratch / output), target)
    return target


def render_all(profile: str = "default", timeout: int | None = None, root: Path | None = None,
               compute: bool = False) -> list[Path]:
    """Render the site for ``profile``; chapters compute missing results only when ``compute``.

    With ``quarto`` on PATH: ``quarto render --profile <profile>`` (another profile than ``default`` in a
    copy of the sources, :func:`render_isolated`, so that it never deletes the default's frozen
    results); returns []. Without:
    executes every chapter of :func:`project_chapters`, writes each notebook to
    ``_site_notebooks/<profile>/<path>.ipynb``, prints how to install Quarto, and
    returns the notebooks' paths.
    """
    import nbformat
    from layercollapse.study.experiments import COMPUTE_ENV

    root = root or project_root()
    env = {COMPUTE_ENV: "1" if compute else "0"}
    quarto = shutil.which("quarto")
    if quarto:
        if profile == FREEZE_PROFILE:
            subprocess.run([quarto, "render", "--profile", profile], cwd=root, check=True, env={**os.environ, **env})
        else:
            render_isolated(quarto, profile, root, env)
        return []
    written = []
    for path in project_chapters(root):
        print(f"executing {path.relative_to(root)} (profile {profile})", end="", flush=True)
        start = time.perf_counter()
        executed = execute_chapter(path, profile=profile, timeout=timeout, env=env)
        print(f" in {time.perf_counter() - start:.0f} s", flush=True)
        target = root / NOTEBOOKS_DIR / profile / path.relative_to(root).with_suffix(".ipynb")
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        nbformat.write(executed.notebook, tmp)
        os.replace(tmp, target)
        written.append(target)
    print(QUARTO_INSTALL_HINT.format(notebooks=(root / NOTEBOOKS_DIR / profile).relative_to(root), profile=profile))
    return written
