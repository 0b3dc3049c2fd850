"""The rendered site read as a reader with no network would (Chromium, every request outside localhost blocked).

``test_rendered_default_site_reads_offline`` checks ``_site/`` when Quarto has rendered it and a browser
is present, and skips with the reason otherwise; the checker itself is tested on a small site built
here, so that every check is shown to fail when it should.
"""

from __future__ import annotations

import html
import itertools
import re
from pathlib import Path

import altair as alt
import browser
import pandas as pd
import pytest
import rendered_site
from layercollapse.claims.verdicts import CLAIMS, DATA_ENV, Verdict, claim_base, load_verdicts
from layercollapse.paths import project_root
from layercollapse.site import vega
from layercollapse.site.ledger import NOT_COMPUTED, ledger_rows, ledger_table
from layercollapse.site.tables import Table
from layercollapse.study.profiles import Setting, load_profile

SITE = project_root() / "_site"
needs_browser = pytest.mark.browser  # conftest skips, saying why, without Chromium and playwright
#: What Quarto 1.7's HTML theme does to links in tables (formats/html/bootstrap/_bootstrap-rules.scss): they may
#: break anywhere, so a narrow ledger column cut the chapter titles mid-word ("Representati on").
QUARTO_TABLE_CSS = ("table { border-collapse: collapse; } th, td { padding: .5rem; } "
                    ".table a { word-break: break-word; }")


def recorded_statuses(profile: str) -> dict[str, str]:
    """The status each ledger badge must show, by claim part (``C1``, ``C3a``), computed apart from the ledger: the
    status every setting the part is decided on agrees on, "mixed" where they disagree (a part decided once: its
    verdict's); "not computed" for a claim without any."""
    found: dict[str, set[str]] = {}
    for verdict in load_verdicts(profile).values():
        found.setdefault(verdict.claim, set()).add(verdict.status)
    statuses = {part: next(iter(seen)) if len(seen) == 1 else "mixed" for part, seen in found.items()}
    for claim in CLAIMS:
        if not any(claim_base(part) == claim for part in statuses):
            statuses[claim] = NOT_COMPUTED
    return statuses


def test_recorded_statuses_are_what_each_claim_parts_settings_agree_on(tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    spec = load_profile("test")
    other = Setting("gemma3-270m", "arc_easy", "cloze", 0)
    challenge = Setting(spec.main_model, "arc_challenge", "letter", 0)
    for verdict in (Verdict("C1", "supported", "drop", 0.2, "Main.").on(spec.main_setting),
                    Verdict("C1", "inconclusive", "drop", 0.1, "Other model.").on(other),
                    Verdict("C3b", "not supported", "gap", 0.0, "Decided once."),
                    Verdict("C5b", "supported", "share", 0.5, "Other task.").on(challenge),
                    Verdict("C5b", "supported", "share", 0.9, "Main task.").on(spec.main_setting)):
        verdict.record("test")
    assert sorted(load_verdicts("test")) == sorted([f"C1@{other.key}", f"C1@{spec.main_setting.key}", "C3b",
                                                    f"C5b@{challenge.key}", f"C5b@{spec.main_setting.key}"])
    statuses = recorded_statuses("test")
    assert {part: statuses[part] for part in ("C1", "C3b", "C5b")} == {
        "C1": "mixed", "C3b": "not supported", "C5b": "supported"}
    assert statuses["C2"] == statuses["R1"] == NOT_COMPUTED and "C3" not in statuses  # C3 is shown by its parts
    assert set(statuses) == {"C1", "C3b", "C5b"} | (set(CLAIMS) - {"C1", "C3", "C5"})
    assert statuses == {row.claim: row.status for row in ledger_rows("test")}


@pytest.mark.slow
def test_recorded_statuses_of_the_committed_default_verdicts_are_what_the_ledger_shows():
    """What the rendered ledger is checked against, computed apart from it, agrees with its rows."""
    assert recorded_statuses("default") == {row.claim: row.status for row in ledger_rows("default")}


@needs_browser
@pytest.mark.quarto
@pytest.mark.skipif(not (SITE / "index.html").is_file(),
                    reason="no rendered site in _site/: run `quarto render --profile default` (needs Quarto)")
def test_rendered_default_site_reads_offline():
    weights = rendered_site.site_weight(SITE)
    print(f"_site: {len(weights)} files, {sum(weights.values()) / 1e6:.2f} MB")
    assert rendered_site.check_site(SITE, recorded_statuses("default")) == []


_LINK_TAG = re.compile(r"<link\b[^>]*>", re.I)
_ATTRIBUTE = re.compile(r"""([\w-]+)\s*=\s*(?:"([^"]*)"|'([^']*)')""")


def page_icons(page: Path) -> list[str]:
    """The ``href`` of each ``<link rel="icon">`` (or ``shortcut icon``) of an HTML page."""
    icons = []
    for tag in _LINK_TAG.findall(page.read_text()):
        attributes = {name.lower(): double or single for name, double, single in _ATTRIBUTE.findall(tag)}
        if "icon" in attributes.get("rel", "").lower().split():
            icons.append(attributes.get("href", ""))
    return icons


def test_page_icons_reads_link_tags_in_any_order(tmp_path):
    page = tmp_path / "index.html"
    page.write_text('<head><link href="./a.svg" rel="icon" type="image/svg+xml"><link rel="stylesheet" href="s.css">'
                    "<LINK rel='shortcut icon' href='b.ico'></head>")
    assert page_icons(page) == ["./a.svg", "b.ico"]


@pytest.mark.quarto
@pytest.mark.skipif(not (SITE / "index.html").is_file(),
                    reason="no rendered site in _site/: run `quarto render --profile default` (needs Quarto)")
def test_rendered_pages_link_a_favicon_that_is_in_the_site():
    """Every page names the favicon (else a browser asks for /favicon.ico, a 404 in its console) and Quarto copied it."""
    pages = [SITE / "index.html", *sorted((SITE / "chapters").glob("*.html"))]
    for page in pages:
        icons = page_icons(page)
        assert icons, f"{page.relative_to(SITE)} links no favicon"
        for href in icons:
            target = (page.parent / href.split("?")[0]).resolve()
            assert target.is_file() and target.is_relative_to(SITE.resolve()), (
                f"{page.relative_to(SITE)} links the favicon {href}, not in _site/")


_SPAN = re.compile(r"\[([^\]]*)\]\{([^}]*)\}")  # Pandoc's bracketed span: [text]{.class key="value"}
_LINK = re.compile(r"\[([^\]]*)\]\(([^)]*)\)")


def _inline_html(markdown: str) -> str:
    """The HTML Pandoc makes of a ledger cell: its bracketed spans (the verdict badges) and links."""
    def span(match: re.Match) -> str:
        classes = " ".join(re.findall(r"\.([\w-]+)", match[2]))
        attributes = "".join(f" {pair}" for pair in re.findall(r'[\w-]+="[^"]*"', match[2]))
        return f'<span class="{classes}"{attributes}>{match[1]}</span>'

    return _LINK.sub(r'<a href="\2">\1</a>', _SPAN.sub(span, html.escape(markdown, quote=False)))


def ledger_html(table: Table) -> str:
    """The HTML Quarto makes of a ledger :class:`Table`: a Bootstrap table of its cells."""
    head = "".join(f"<th>{html.escape(str(column))}</th>" for column in table.frame.columns)
    rows = "".join("<tr>" + "".join(f"<td>{_inline_html(str(value))}</td>" for value in row) + "</tr>"
                   for row in table.frame.itertuples(index=False))
    return f'<table class="table"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'


def _tiny_site(root: Path, monkeypatch, ledger: str, css: str, chapter_extra: str = "") -> Path:
    """index.html (the HTML of a ledger, in a column narrower than its words) and chapters/a.html (two site-mode
    charts) under ``root``, both styled by ``css``."""
    monkeypatch.delenv(vega.VEGA_MODE_ENV, raising=False)
    monkeypatch.setenv("QUARTO_PROJECT_ROOT", str(root))
    (root / "chapters").mkdir(parents=True, exist_ok=True)
    monkeypatch.chdir(root / "chapters")
    vega.enable_offline_rendering()
    chart = alt.Chart(pd.DataFrame({"x": [1, 2, 3], "y": [0.2, 0.5, 0.4]})).mark_line().encode(x="x:Q", y="y:Q")
    charts = "".join(chart._repr_mimebundle_()["text/markdown"].removeprefix("```{=html}\n").removesuffix("```\n")
                     for _ in range(2))
    page = ("<!doctype html><html><head><meta charset='utf-8'><style>{}</style></head>"
            "<body><main class='content' style='width: 800px'>{}</main></body></html>")
    (root / "chapters" / "a.html").write_text(page.format(css, charts + chapter_extra))
    (root / "index.html").write_text(page.format(css, f"<div style='width: 320px'>{ledger}</div>"))
    return root


@pytest.mark.slow
@needs_browser
def test_check_site_passes_a_clean_site_and_names_each_problem(tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "data"))
    main = load_profile("test").main_setting
    other, challenge = Setting("gemma3-270m", "arc_easy", "cloze", 0), Setting(main.model, "arc_challenge", "letter", 0)
    for verdict in (Verdict("C1", "supported", "drop", 0.2, "Main model.").on(main),
                    Verdict("C1", "supported", "drop", 0.1, "Other model.").on(other),
                    Verdict("C5b", "supported", "share", 0.9, "Main task.").on(main),
                    Verdict("C5b", "not supported", "share", 0.1, "Other task.").on(challenge)):
        verdict.record("test")  # files C1@<setting>.json, as the chapters write them
    statuses = recorded_statuses("test")
    ledger = ledger_html(ledger_table("test"))
    theme, renderer = alt.theme.active, alt.renderers.active
    try:
        clean = _tiny_site(tmp_path / "clean", monkeypatch, ledger,
                           QUARTO_TABLE_CSS + rendered_site.site_css_rules(project_root()))
        assert rendered_site.check_site(clean, statuses) == []
        assert rendered_site.check_site(clean, statuses, budget=10_000) == [
            f"the site weighs {sum(rendered_site.site_weight(clean).values()) / 1e6:.1f} MB, over its 0.0 MB budget"]
        broken = _tiny_site(
            tmp_path / "broken", monkeypatch, ledger, QUARTO_TABLE_CSS,  # Quarto's table rule without the site's
            chapter_extra=('<p>accuracy NaN</p><div style="width: 2000px">wide</div>'
                           '<script src="https://cdn.jsdelivr.net/npm/jquery@3.5.1/dist/jquery.min.js"></script>'
                           '<script>undefinedFunction()</script>'
                           '<div class="vega-visualization" id="never-drawn"></div>'
                           '<div id="tbl-wide" style="overflow-x: auto"><table><tr><td style="min-width: 1200px">'
                           'twelve hundred pixels</td></tr></table></div>'
                           f'<script src="../assets/vega/{vega.vega_bundle_name()}"></script>'))
        problems = rendered_site.check_site(broken, {**statuses, "C1": "mixed"})
    finally:
        alt.theme.enable(theme)
        alt.renderers.enable(renderer)
    text = "\n".join(problems)
    assert "chapters/a.html: request outside the machine: https://cdn.jsdelivr.net/npm/jquery" in text
    assert "chapters/a.html: console error: undefinedFunction is not defined" in text
    assert "chapters/a.html: chart never-drawn did not draw" in text
    assert "chapters/a.html: the text shows NaN" in text
    assert "px wide in a 900 px window (scrolls sideways)" in text
    assert "chapters/a.html: the Vega bundle is loaded 2 times" in text
    for width in (900, 1280):
        assert re.search(rf"index.html: words broken mid-word in a table at {width} px: \[.*'Representation'", text)
    (badges,) = [problem for problem in problems if problem.startswith("index.html: the ledger's badges")]
    shown, recorded = badges.split(" differ from the verdict files ")
    assert "'C1': 'supported'" in shown and "'C1': 'mixed'" in recorded and "'C5b': 'mixed'" in shown
    # a table wider than the text column inside a box that scrolls: the page does not widen, the reader sees a part
    assert re.search(r"chapters/a.html: table tbl-wide is 12\d\d px wide in a 800 px text column at 1280 px", text)


@pytest.mark.slow
@needs_browser
def test_the_ledger_keeps_its_words_whole_in_a_narrow_column(tmp_path):
    """The default profile's ledger, drawn with Quarto's table rule, in a column as narrow as Quarto's body column
    beside a docked sidebar and the table of contents, or narrower, at 900 and 1280 px: with the site's SCSS rules no
    word breaks mid-word and the table stays in its column (scrolling sideways there, not the page)."""
    table = ledger_html(ledger_table("default"))
    styles = {"quarto": QUARTO_TABLE_CSS, "site": QUARTO_TABLE_CSS + rendered_site.site_css_rules(project_root())}
    urls = {}
    for (name, css), column in itertools.product(styles.items(), (480, 640, 720)):
        page = tmp_path / f"{name}-{column}.html"  # the column at the window's right edge: overflow widens the page
        page.write_text("<!doctype html><html><head><meta charset='utf-8'><style>body { margin: 0; font: 17px "
                        f"system-ui, sans-serif; }} main {{ width: {column}px; margin-left: auto; }} {css}</style>"
                        f"</head><body><main>{table}</main></body></html>")
        urls[page.as_uri()] = name
    for width in (900, 1280):
        reports = browser.open_pages(list(urls), width=width, settle_ms=100)
        quarto = [report for report in reports if urls[report.url] == "quarto"]
        site = [report for report in reports if urls[report.url] == "site"]
        assert all("Representation" in report.broken_words for report in quarto)  # the check sees the bug
        assert [(report.url, report.broken_words) for report in site if report.broken_words] == []
        assert [report.url for report in site if report.scroll_width > width] == []


@pytest.mark.slow
@needs_browser
def test_the_notebook_stand_in_names_a_chart_and_a_table_wider_than_the_column(tmp_path):
    """The Quarto-free twin of the column check fails on the bug the real site had: a chart of two 600 px panels side
    by side (chapter 11's first dose-response figure, 1,314 px) and a table wider than the column, laid out in
    Chromium at 1280 px; the same chart as rows fits."""
    import nbformat

    frame = pd.DataFrame({"k": [0, 1, 2] * 2, "share": [1.0, 0.8, 0.5, 1.0, 0.9, 0.7],
                          "task": ["arc_easy"] * 3 + ["arc_challenge"] * 3})
    base = alt.Chart(frame).mark_line().encode(x="k:Q", y="share:Q").properties(width=600, height=120)
    wide_table = "<table id='tbl-wide'><tr>" + "".join(f"<td>column&nbsp;number&nbsp;{i}</td>" for i in range(12))
    cells = []
    for chart in (base.facet(column="task:N"), base.facet(row="task:N")):
        bundle = vega.offline_html(chart.to_dict())
        cells.append(nbformat.v4.new_code_cell(outputs=[nbformat.v4.new_output(
            "display_data", data={"text/html": bundle, "text/plain": "chart"})]))
    cells.append(nbformat.v4.new_code_cell(outputs=[nbformat.v4.new_output(
        "display_data", data={"text/html": wide_table + "</tr></table>", "text/plain": "table"})]))
    page = rendered_site.notebook_page(nbformat.v4.new_notebook(cells=cells), tmp_path / "wide.html")
    (report,) = browser.open_pages([page.as_uri()], width=rendered_site.WIDE_WINDOW_PX, settle_ms=800)
    problems = rendered_site.column_problems("wide.html", report, rendered_site.WIDE_WINDOW_PX)
    charts = [element for element in report.elements if element["kind"] == "chart"]
    assert len(charts) == 2 and charts[0]["width"] > 1200 and charts[1]["width"] <= report.column, charts
    assert len([problem for problem in problems if " chart " in problem]) == 1, problems
    assert any("table tbl-wide" in problem or "table (unnamed)" in problem for problem in problems), problems
