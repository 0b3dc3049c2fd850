"""The rendered site read as a reader with no network would (Chromium, every request outside localhost blocked).

``test_rendered_default_site_reads_offline`` checks ``_site/`` when Quarto has rendered it and a browser
is present, and skips with the reason otherwise; the checker itself is tested on a small site built
here, so that every check is shown to fail when it should.
"""

from __future__ import annotations

from pathlib import Path

import altair as alt
import browser
import pandas as pd
import pytest
import rendered_site
from layercollapse.claims.verdicts import CLAIMS, claim_base, load_verdicts
from layercollapse.paths import project_root
from layercollapse.site import plots
from layercollapse.site.ledger import NOT_COMPUTED

SITE = project_root() / "_site"
needs_browser = pytest.mark.skipif(browser.skip_reason() is not None, reason=str(browser.skip_reason()))


def recorded_statuses(profile: str) -> dict[str, str]:
    """The status each ledger row must show: every recorded verdict, "not computed" for a claim without one."""
    verdicts = load_verdicts(profile)
    statuses = {claim: verdict.status for claim, verdict in verdicts.items()}
    for claim in CLAIMS:
        if not any(claim_base(recorded) == claim for recorded in statuses):
            statuses[claim] = NOT_COMPUTED
    return statuses


@needs_browser
@pytest.mark.skipif(not (SITE / "index.html").is_file(),
                    reason="no rendered site in _site/: run `quarto render --profile default` (needs Quarto)")
def test_rendered_default_site_reads_offline():
    weights = rendered_site.site_weight(SITE)
    print(f"_site: {len(weights)} files, {sum(weights.values()) / 1e6:.2f} MB")
    assert rendered_site.check_site(SITE, recorded_statuses("default")) == []


def _badge(claim: str, status: str) -> str:
    """A ledger badge as Quarto renders ``ledger.badge``'s bracketed span."""
    return f'<span class="badge verdict-badge" data-claim="{claim}">{status}</span>'


def _tiny_site(root: Path, monkeypatch, chapter_extra: str = "", index_extra: str = "",
               statuses: dict[str, str] | None = None) -> Path:
    """index.html (a ledger) and chapters/a.html (two site-mode charts) under ``root``."""
    monkeypatch.delenv(plots.VEGA_MODE_ENV, raising=False)
    monkeypatch.setenv("QUARTO_PROJECT_ROOT", str(root))
    (root / "chapters").mkdir(parents=True, exist_ok=True)
    monkeypatch.chdir(root / "chapters")
    plots.enable_offline_rendering()
    chart = alt.Chart(pd.DataFrame({"x": [1, 2, 3], "y": [0.2, 0.5, 0.4]})).mark_line().encode(x="x:Q", y="y:Q")
    html = "".join(chart._repr_mimebundle_()["text/markdown"].removeprefix("```{=html}\n").removesuffix("```\n")
                   for _ in range(2))
    page = "<!doctype html><html><head><meta charset='utf-8'></head><body><main style='width: 800px'>{}</main></body></html>"
    (root / "chapters" / "a.html").write_text(page.format(html + chapter_extra))
    badges = "".join(_badge(claim, status) for claim, status in (statuses or {"C1": "supported"}).items())
    (root / "index.html").write_text(page.format(badges + index_extra))
    return root


@pytest.mark.slow
@needs_browser
def test_check_site_passes_a_clean_site_and_names_each_problem(tmp_path, monkeypatch):
    theme, renderer = alt.theme.active, alt.renderers.active
    try:
        clean = _tiny_site(tmp_path / "clean", monkeypatch)
        assert rendered_site.check_site(clean, {"C1": "supported"}) == []
        assert rendered_site.check_site(clean, {"C1": "supported"}, budget=10_000) == [
            f"the site weighs {sum(rendered_site.site_weight(clean).values()) / 1e6:.1f} MB, over its 0.0 MB budget"]
        broken = _tiny_site(
            tmp_path / "broken", monkeypatch, statuses={"C1": "inconclusive"},
            chapter_extra=('<p>accuracy NaN</p><div style="width: 2000px">wide</div>'
                           '<script src="https://cdn.jsdelivr.net/npm/jquery@3.5.1/dist/jquery.min.js"></script>'
                           '<script>undefinedFunction()</script>'
                           '<div class="vega-visualization" id="never-drawn"></div>'
                           f'<script src="../assets/vega/{plots.vega_bundle_name()}"></script>'))
        problems = rendered_site.check_site(broken, {"C1": "supported"})
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
    assert "index.html: the ledger's badges {'C1': 'inconclusive'} differ from the verdict files {'C1': 'supported'}" in text
