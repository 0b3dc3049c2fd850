"""Open pages in headless Chromium with the network blocked, as a reader with no internet would.

Needs Debian's Chromium (``apt-get install chromium``: /usr/bin/chromium) and the Python
``playwright`` package (the test extra); ``skip_reason()`` says what is missing, so the
browser tests skip with that reason instead of failing on a machine without a browser.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from urllib.parse import urlparse

CHROMIUM = os.environ.get("CHROMIUM", shutil.which("chromium") or "/usr/bin/chromium")
# Quiet and closed: no background connections to Google's hosts on a machine without a network.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", ""}  # "" = file: and data: URLs

# What a page does once drawn: every Vega chart's SVG/canvas size inside its element, the page's overflow, the
# words of table cells drawn on two lines (a word: text between the spaces, hyphens, dashes and slashes a line may
# break at), and the rendered width of every chart and table against the text column (Quarto's `main.content`, or
# the element a test marks `data-text-column`): a wide element inside a scrolling box widens no page, but a reader
# sees only the part that fits. Each element is named by the nearest id around it (a figure's or table's label).
_MEASURE = r"""() => { const WORD = /[^\s\-\u2010\u2013\u2014\/]+/g;
  // the width a chart was drawn at: a stylesheet that squeezes it into the column (max-width: 100%) hides the overflow
  // from its box but shrinks its text below legibility, so both count as too wide
  const drawnWidth = el => el.tagName === 'CANVAS' ? (parseFloat(el.style.width) || el.width / devicePixelRatio)
                         : el.tagName.toLowerCase() === 'svg' ? (parseFloat(el.getAttribute('width')) || 0) : 0;
  return ({
  charts: [...document.querySelectorAll('.vega-visualization, .vega-embed')].filter(
      el => !el.parentElement.closest('.vega-visualization, .vega-embed')).map(el => {
    const drawn = el.querySelector('svg.marks, canvas');
    return {id: el.id, parent_width: el.parentElement.getBoundingClientRect().width,
            drawn: !!drawn, width: drawn ? drawn.getBoundingClientRect().width : 0};
  }),
  scroll_width: document.documentElement.scrollWidth,
  column: (() => { const c = document.querySelector('[data-text-column], main.content, #quarto-document-content');
                   return c ? c.getBoundingClientRect().width : null; })(),
  elements: [...document.querySelectorAll('svg.marks, canvas.marks, table')].map(el => {
    const named = el.closest('[id]:not(svg):not(canvas)');
    return {kind: el.tagName === 'TABLE' ? 'table' : 'chart', name: named ? named.id : '',
            width: Math.round(Math.max(el.getBoundingClientRect().width, el.scrollWidth || 0, drawnWidth(el)))};
  }),
  text: document.body.innerText,
  scripts: [...document.querySelectorAll('script[src]')].map(s => s.src),
  badges: [...document.querySelectorAll('.verdict-badge')].map(el => [el.dataset.claim, el.innerText.trim()]),
  broken_words: [...document.querySelectorAll('td, th')].flatMap(cell => {
    const broken = [], walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      for (const word of node.data.matchAll(WORD)) {  // a word drawn on two lines was broken inside
        const range = document.createRange();
        range.setStart(node, word.index);
        range.setEnd(node, word.index + word[0].length);
        if (new Set([...range.getClientRects()].map(rect => Math.round(rect.top))).size > 1) broken.push(word[0]);
      }
    }
    return broken;
  }),
}); }"""


@dataclasses.dataclass
class PageReport:
    """What one page showed: charts drawn (with their widths, px), console errors, blocked requests, table words
    broken mid-word."""

    url: str
    charts: list[dict]
    scroll_width: float
    text: str
    console_errors: list[str]
    outside_requests: list[str]
    scripts: list[str] = dataclasses.field(default_factory=list)  # src of every script element (static or added)
    badges: list[list[str]] = dataclasses.field(default_factory=list)  # [claim, status] of each ledger badge
    broken_words: list[str] = dataclasses.field(default_factory=list)  # words of table cells drawn on two lines
    column: float | None = None  # width of the text column (px), None where the page has none
    elements: list[dict] = dataclasses.field(default_factory=list)  # {kind: chart | table, name, width} of each

    def wider_than_column(self, slack: float = 1.0) -> list[dict]:
        """The charts and tables drawn wider than the text column (by more than ``slack`` px)."""
        if self.column is None:
            return []
        return [element for element in self.elements if element["width"] > self.column + slack]

    def widest(self) -> dict | None:
        """The widest chart or table of the page, or None."""
        return max(self.elements, key=lambda element: element["width"], default=None)


def skip_reason() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "needs the playwright package (pip install -e '.[test]')"
    if not os.path.exists(CHROMIUM):
        return f"needs Chromium at {CHROMIUM} (Debian: apt-get install chromium; or set CHROMIUM)"
    return None


def open_pages(urls: list[str], width: int = 900, height: int = 1000, settle_ms: int = 1500) -> list[PageReport]:
    """Load each URL at ``width`` x ``height`` px with every non-local request aborted and recorded.

    Args:
        urls: file:// or http://localhost URLs.
        width, height: window size in CSS pixels.
        settle_ms: time given to the charts to draw after the page's load event.
    """
    from playwright.sync_api import sync_playwright

    reports = []
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for url in urls:
                page = browser.new_page(viewport={"width": width, "height": height})
                errors: list[str] = []
                outside: list[str] = []
                page.on("console", lambda message, errors=errors: message.type == "error" and errors.append(message.text))
                page.on("pageerror", lambda error, errors=errors: errors.append(str(error)))

                def route(request_route, _request=None, outside=outside):  # playwright passes (route, request)
                    if (urlparse(request_route.request.url).hostname or "") in LOCAL_HOSTS:
                        return request_route.continue_()
                    outside.append(request_route.request.url)
                    return request_route.abort()

                page.route("**/*", route)
                page.goto(url, wait_until="load")
                page.wait_for_timeout(settle_ms)
                measured = page.evaluate(_MEASURE)
                reports.append(PageReport(url, measured["charts"], measured["scroll_width"], measured["text"],
                                          errors, outside, measured["scripts"], measured["badges"],
                                          measured["broken_words"], measured["column"], measured["elements"]))
                page.close()
        finally:
            browser.close()
    return reports
