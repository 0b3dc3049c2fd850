"""Every chapter of _quarto.yml executes end to end in the `test` profile.

Chapters run through a Jupyter kernel exactly as Quarto's Jupyter engine runs them
(layercollapse.site.chapters.execute_chapter), so this needs no Quarto. A claim chapter
(chapters/NN-*.qmd) must produce at least one figure (a cell labelled fig-* whose
output is an Altair/Vega-Lite chart) and at least one verdict (Verdict(...).show()), shown before
anything else; no cell writes to stderr, every inline expression resolves, every mark has a tooltip.
"""

from __future__ import annotations

import json
import re

import pytest
from layercollapse.claims.verdicts import (
    DATA_ENV,
    MARKER_PREFIX,
    METADATA_KEY,
    STATUSES,
    Verdict,
)
from layercollapse.paths import project_root
from layercollapse.site import vega
from layercollapse.site.chapters import execute_chapter, project_chapters
from layercollapse.study.experiments import COMPUTE_ENV

ROOT = project_root()
EXECUTED: dict = {}  # the notebooks this session executed, by chapter path (the column check reads them)
CLAIM_CHAPTER = re.compile(r"^chapters/\d\d-[a-z0-9-]+\.qmd$")
CELL_TIMEOUT_S = 900  # the test profile is sized so that no cell comes near this
VEGA_LITE_MIME = re.compile(r"^application/vnd\.vegalite\.v\d+\+json$")


def _is_chart(output: dict) -> bool:
    """An Altair chart: a Vega-Lite mimebundle, or Altair's HTML renderer output."""
    data = output.get("data", {})
    html = data.get("text/html", "")
    return any(VEGA_LITE_MIME.match(mime) for mime in data) or ("vegaEmbed" in html and "vega-lite" in html)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    """Verdicts of the test runs go to a temporary data folder, not the checkout's data/."""
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="session")
def store_dir(tmp_path_factory):
    """One fresh results store for the session: the first chapter that needs a result computes it."""
    return tmp_path_factory.mktemp("store")


@pytest.mark.slow
@pytest.mark.parametrize("path", project_chapters(), ids=lambda p: str(p.relative_to(ROOT)))
def test_chapter_executes_in_the_test_profile(path, data_dir, store_dir):
    env = {DATA_ENV: str(data_dir), "LAYERCOLLAPSE_STORE": str(store_dir), COMPUTE_ENV: "1"}  # a fresh store: compute
    executed = execute_chapter(path, profile="test", timeout=CELL_TIMEOUT_S, env=env)
    EXECUTED[path] = executed.notebook
    assert not [cell.errors for cell in executed.cells if cell.errors]
    # Nothing writes into the page behind the reader's back: no warnings or progress bars (stderr).
    stderr = [(cell.label, out.get("text", "")[:200]) for cell in executed.cells for out in cell.outputs
              if out.get("output_type") == "stream" and out.get("name") == "stderr"]
    assert stderr == [], f"{path.name}: cells wrote to stderr: {stderr}"
    prose = "\n".join(executed.markdown)
    assert "{python}" not in prose and "NaN" not in prose, f"{path.name}: unresolved inline code or NaN in the prose"
    for cell in executed.cells:
        for out in cell.outputs:
            for spec in vega.specs_in_html(out.get("data", {}).get("text/html", "")):
                assert vega.marks_without_tooltip(spec) == [], f"{path.name}: {cell.label}: marks without a tooltip"
    if not CLAIM_CHAPTER.match(str(path.relative_to(ROOT))):
        return

    figures = [cell for cell in executed.cells if str(cell.label).startswith("fig-")]
    assert figures, f"{path.name}: no cell labelled fig-*"
    for cell in figures:
        assert any(_is_chart(out) for out in cell.outputs), (
            f"{path.name}: figure cell {cell.label} displayed no Altair chart (mime types {cell.mime_types})")

    shown = [out for out in executed.outputs if METADATA_KEY in out.get("metadata", {})]
    assert shown, f"{path.name}: no verdict displayed (verdict.show(spec.name) right under the claim)"
    displayed = [out for out in executed.outputs if out.get("output_type") in ("display_data", "execute_result")]
    assert displayed[:len(shown)] == shown, f"{path.name}: the verdict is the first thing the chapter shows"
    for out in shown:
        found = out["metadata"][METADATA_KEY]  # one verdict, or a claim part on every setting (site.matrix)
        for verdict in found if isinstance(found, list) else [found]:
            assert verdict["status"] in STATUSES
            key = Verdict.from_dict(verdict).key  # the claim, or claim@model@task@format@<k>shot on a setting
            marker = f"{MARKER_PREFIX}{key} -->"
            assert marker in out["data"].get("text/markdown", "") and "text/html" not in out["data"]
            recorded = json.loads((data_dir / "verdicts" / "test" / f"{key}.json").read_text())
            assert recorded["status"] == verdict["status"] and recorded["profile"] == "test"


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.parametrize("path", project_chapters(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_chart_and_table_of_a_chapter_fits_the_text_column(path, data_dir, store_dir, tmp_path):
    """The Quarto-free twin of the rendered site's column check: the executed chapter converted to HTML and laid out
    in Chromium with its outputs in Quarto's 778 px text column at 1280 px; no chart or table is drawn wider."""
    import browser
    import rendered_site

    notebook = EXECUTED.get(path)
    if notebook is None:  # run alone: execute it here
        env = {DATA_ENV: str(data_dir), "LAYERCOLLAPSE_STORE": str(store_dir), COMPUTE_ENV: "1"}
        notebook = execute_chapter(path, profile="test", timeout=CELL_TIMEOUT_S, env=env).notebook
    page = rendered_site.notebook_page(notebook, tmp_path / f"{path.stem}.html")
    (report,) = browser.open_pages([page.as_uri()], width=rendered_site.WIDE_WINDOW_PX, settle_ms=500)
    assert report.column == rendered_site.TEXT_COLUMN_PX and report.elements, f"{path.name}: nothing measured"
    assert rendered_site.column_problems(path.name, report, rendered_site.WIDE_WINDOW_PX) == []
