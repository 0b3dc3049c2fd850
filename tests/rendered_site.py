"""Checks of a rendered site (``_site/``) as a reader with no network sees it, in headless Chromium.

:func:`check_site` serves the folder on localhost, opens every page at 900 px with every request
outside localhost blocked, and returns the problems it found (an empty list when none):
a chart that did not draw, a console error, a request that left the machine, "NaN" in the text,
horizontal overflow, a word of a table broken mid-word (the ledger also at 1280 px), a chart or table drawn wider than
the text column at 1280 px (on every page: a wide element inside a scrolling box widens no page, but a reader sees
only what fits), the Vega bundle loaded more than once, the ledger's badges differing from the verdict files, a site
heavier than its budget.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import browser
import yaml

WINDOW_PX = 900
WIDE_WINDOW_PX = 1280  # every page is read at this width too (its text column narrows beside the sidebar and contents)
TEXT_COLUMN_PX = 778  # Quarto's text column in a 1280 px window (measured on the rendered site)
LEDGER_PAGE = "index.html"
SITE_BUDGET_BYTES = 4_000_000  # the whole default site (issue: light enough to read on a slow line)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args) -> None:  # noqa: A002 (the base class's name)
        pass


@contextlib.contextmanager
def serve(folder: Path) -> Iterator[str]:
    """Serve ``folder`` over HTTP on localhost; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def site_weight(folder: Path) -> dict[str, int]:
    """Bytes of every file of the site, by path relative to ``folder``."""
    return {str(path.relative_to(folder)): path.stat().st_size for path in sorted(folder.rglob("*")) if path.is_file()}


def column_problems(page: str, report: browser.PageReport, width: int) -> list[str]:
    """The charts and tables of a page drawn wider than its text column in a ``width`` px window."""
    return [f"{page}: {element['kind']} {element['name'] or '(unnamed)'} is {element['width']} px wide in a "
            f"{report.column:.0f} px text column at {width} px" for element in report.wider_than_column()]


def _layout_problems(page: str, report: browser.PageReport, width: int) -> list[str]:
    """A page wider than its ``width`` px window, and words of its tables broken mid-word."""
    problems = []
    if report.broken_words:
        problems.append(f"{page}: words broken mid-word in a table at {width} px: {report.broken_words}")
    if report.scroll_width > width:
        problems.append(f"{page}: {report.scroll_width} px wide in a {width} px window (scrolls sideways)")
    return problems


def check_site(folder: Path, statuses: dict[str, str], budget: int = SITE_BUDGET_BYTES) -> list[str]:
    """Problems a reader with no network would meet in the rendered site ``folder``.

    Args:
        folder: the rendered site (holds ``index.html``).
        statuses: the verdict status of each claim id, as recorded on disk; the ledger's badges must equal it.
        budget: largest total size of the site, bytes.
    """
    pages = sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*.html")
                   if "site_libs" not in path.parts)
    problems = []
    total = sum(site_weight(folder).values())
    if total > budget:
        problems.append(f"the site weighs {total / 1e6:.1f} MB, over its {budget / 1e6:.1f} MB budget")
    with serve(folder) as base:
        reports = browser.open_pages([base + page for page in pages], width=WINDOW_PX)
        wide = browser.open_pages([base + page for page in pages], width=WIDE_WINDOW_PX)
    for page, report in zip(pages, reports):
        problems += [f"{page}: console error: {error}" for error in report.console_errors]
        problems += [f"{page}: request outside the machine: {url}" for url in report.outside_requests]
        problems += [f"{page}: chart {chart['id']} did not draw" for chart in report.charts if not chart["drawn"]]
        if "NaN" in report.text:
            problems.append(f"{page}: the text shows NaN")
        problems += _layout_problems(page, report, WINDOW_PX)
        bundles = [url for url in report.scripts if "/vega/" in url or "vega-embed" in url.rsplit("/", 1)[-1]]
        if len(bundles) > 1:
            problems.append(f"{page}: the Vega bundle is loaded {len(bundles)} times")
        if page == LEDGER_PAGE:
            shown = dict(report.badges)
            if shown != statuses:
                problems.append(f"index.html: the ledger's badges {shown} differ from the verdict files {statuses}")
    for page, report in zip(pages, wide):
        if page == LEDGER_PAGE:
            problems += _layout_problems(LEDGER_PAGE, report, WIDE_WINDOW_PX)
        problems += column_problems(page, report, WIDE_WINDOW_PX)
    return problems


def theme_layers(config: dict) -> list[str]:
    """The layers of a Quarto configuration's ``format: html: theme`` (a Bootswatch name or SCSS files), in order."""
    theme = config.get("format", {}).get("html", {}).get("theme", [])
    return [theme] if isinstance(theme, str) else list(theme)


def site_css_rules(root: Path) -> str:
    """The ``scss:rules`` sections of the project's own SCSS theme layers (plain CSS): for pages made without Quarto."""
    config = yaml.safe_load((root / "_quarto.yml").read_text())
    return "".join(scss_section(root / layer, "rules") for layer in theme_layers(config) if layer.endswith(".scss"))


def scss_section(path: Path, section: str) -> str:
    """The text of a Quarto SCSS layer's ``/*-- scss:<section> --*/`` section ("" without one)."""
    parts = re.split(r"/\*--\s*scss:(\w+)\s*--\*/", path.read_text())
    return "".join(text for name, text in zip(parts[1::2], parts[2::2]) if name == section)


def notebook_page(notebook, path: Path, column: int = TEXT_COLUMN_PX) -> Path:
    """An executed chapter as a page a browser lays out as Quarto would lay out its outputs: the notebook converted to
    HTML (nbconvert, no input prompts) with its outputs in a ``column`` px text column (``data-text-column``), written
    to ``path``. The Quarto-free twin of the rendered site's column check: charts have the width their specs give
    them in both; tables are drawn with the notebook's CSS, not Bootstrap's, so their widths are close, not equal."""
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="lab")
    exporter.exclude_input_prompt = exporter.exclude_output_prompt = True
    body, _ = exporter.from_notebook_node(notebook)
    style = (f"<style>body[data-text-column] {{ width: {column}px !important; margin: 0 !important; "
             "padding: 0 !important; box-sizing: border-box; } .jp-Cell { padding: 0 !important; } "
             ".jp-OutputArea-output { overflow-x: auto; } .jp-InputArea { display: none; }</style>")
    path.write_text(body.replace("</head>", style + "</head>", 1).replace("<body", "<body data-text-column", 1))
    return path
