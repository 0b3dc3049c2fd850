"""Checks of a rendered site (``_site/``) as a reader with no network sees it, in headless Chromium.

:func:`check_site` serves the folder on localhost, opens every page at 900 px with every request
outside localhost blocked, and returns the problems it found (an empty list when none):
a chart that did not draw, a console error, a request that left the machine, "NaN" in the text,
horizontal overflow, the Vega bundle loaded more than once, the ledger's badges differing from the
verdict files, a site heavier than its budget.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import browser

WINDOW_PX = 900
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
    for page, report in zip(pages, reports):
        problems += [f"{page}: console error: {error}" for error in report.console_errors]
        problems += [f"{page}: request outside the machine: {url}" for url in report.outside_requests]
        problems += [f"{page}: chart {chart['id']} did not draw" for chart in report.charts if not chart["drawn"]]
        if "NaN" in report.text:
            problems.append(f"{page}: the text shows NaN")
        if report.scroll_width > WINDOW_PX:
            problems.append(f"{page}: {report.scroll_width} px wide in a {WINDOW_PX} px window (scrolls sideways)")
        bundles = [url for url in report.scripts if "/vega/" in url or "vega-embed" in url.rsplit("/", 1)[-1]]
        if len(bundles) > 1:
            problems.append(f"{page}: the Vega bundle is loaded {len(bundles)} times")
        if page == "index.html":
            shown = dict(report.badges)
            if shown != statuses:
                problems.append(f"index.html: the ledger's badges {shown} differ from the verdict files {statuses}")
    return problems
