"""Chart helpers produce the intended encodings; offline HTML loads nothing from the network."""

import json
import re
import shutil
import subprocess

import altair as alt
import numpy as np
import pandas as pd
import pytest

from layercollapse import plots


@pytest.fixture
def restore_altair():
    """Put back the theme and renderer a test enables."""
    theme, renderer = alt.theme.active, alt.renderers.active
    yield
    alt.theme.enable(theme)
    alt.renderers.enable(renderer)


@pytest.fixture
def layer_curves() -> pd.DataFrame:
    """Accuracy with its interval at each layer, for two models."""
    layer = np.tile(np.arange(8), 2)
    accuracy = np.r_[np.linspace(0.25, 0.8, 8), np.linspace(0.25, 0.7, 8)]
    return pd.DataFrame(
        {
            "model": ["llama"] * 8 + ["qwen"] * 8,
            "task": "arc_easy",
            "layer": layer,
            "accuracy": accuracy,
            "low": accuracy - 0.03,
            "high": accuracy + 0.03,
        }
    )


def _encodings(spec: dict) -> dict[str, dict]:
    """Mark type -> encoding of each single-view layer of a (nested) layered spec."""
    found = {}
    for layer in spec.get("layer", []):
        found.update(_encodings(layer))
    if "mark" in spec:
        mark = spec["mark"]["type"] if isinstance(spec["mark"], dict) else spec["mark"]
        found[mark] = spec["encoding"]
    return found


def test_site_theme(restore_altair, layer_curves):
    plots.use_site_theme()
    assert alt.theme.active == plots.THEME_NAME
    config = alt.Chart(layer_curves).mark_line().to_dict()["config"]
    assert config["view"]["continuousWidth"] == 600
    assert config["range"]["category"] == plots.PALETTE


def test_line_with_band(layer_curves):
    spec = plots.line_with_band(layer_curves, "layer", "accuracy", "low", "high", color="model").to_dict()
    encodings = _encodings(spec)
    band, line = encodings["area"], encodings["line"]
    assert (band["y"]["field"], band["y2"]["field"]) == ("low", "high")
    assert line["y"]["field"] == "accuracy" and line["x"]["field"] == "layer"
    assert band["color"]["field"] == line["color"]["field"] == "model"
    assert [tip["field"] for tip in line["tooltip"]] == ["model", "task", "layer", "accuracy", "low", "high"]
    assert spec["layer"][1]["mark"]["point"] is True


def test_line_with_band_without_color_or_extra_columns(layer_curves):
    frame = layer_curves.drop(columns=["task", "model"])
    line = _encodings(plots.line_with_band(frame, "layer", "accuracy", "low", "high").to_dict())["line"]
    assert "color" not in line
    assert [tip["field"] for tip in line["tooltip"]] == ["layer", "accuracy", "low", "high"]
    with pytest.raises(KeyError, match="missing_column"):
        plots.line_with_band(frame, "layer", "missing_column", "low", "high")


def _phase_rows(chart: alt.Chart) -> list[tuple[str, float, float]]:
    return [(row.phase, row.start, row.end) for row in chart.data.itertuples()]


def test_phase_shading_bounds():
    assert _phase_rows(plots.phase_shading(3, 8)) == [("Silent Phase", -0.5, 2.5), ("Decisive Phase", 2.5, 7.5)]
    assert _phase_rows(plots.phase_shading(None, 8)) == [("Silent Phase", -0.5, 7.5)]
    assert _phase_rows(plots.phase_shading(0, 8)) == [("Decisive Phase", -0.5, 7.5)]
    with pytest.raises(ValueError, match="outside"):
        plots.phase_shading(8, 8)


def test_phase_shading_layers_under_a_line(layer_curves):
    line = plots.line_with_band(layer_curves, "layer", "accuracy", "low", "high", color="model")
    spec = alt.layer(plots.phase_shading(3, 8), line).to_dict()
    rect = _encodings(spec)["rect"]
    assert (rect["x"]["field"], rect["x2"]["field"]) == ("start", "end")
    # Phases use fill with fixed colours, so they do not take colours from the series.
    assert rect["fill"]["scale"] == {"domain": list(plots.PHASE_COLORS), "range": list(plots.PHASE_COLORS.values())}
    assert "color" not in rect


def test_option_heatmap():
    frame = pd.DataFrame(
        {"layer": np.repeat(np.arange(3), 4), "option": list("ABCD") * 3, "fraction": np.full(12, 0.25)}
    )
    encoding = plots.option_heatmap(frame, "layer", "option", "fraction").to_dict()["encoding"]
    assert (encoding["x"]["field"], encoding["x"]["type"]) == ("layer", "ordinal")
    assert (encoding["y"]["field"], encoding["y"]["type"]) == ("option", "nominal")
    assert encoding["color"]["field"] == "fraction" and encoding["color"]["scale"]["domain"] == [0, 1]


def _script_sources(html: str) -> list[str]:
    return re.findall(r"<script[^>]*\bsrc\s*=", html, flags=re.IGNORECASE)


def test_offline_rendering_inlines_javascript(restore_altair, layer_curves):
    plots.enable_offline_rendering()
    chart = plots.line_with_band(layer_curves, "layer", "accuracy", "low", "high", color="model")
    html = chart._repr_mimebundle_()["text/html"]
    assert "cdn.jsdelivr" not in html and not _script_sources(html)
    assert not re.search(r"""(src|href)\s*=\s*["']?https?://""", html)
    assert "window.vegaEmbed=" in html and len(html) > 500_000  # the bundle itself
    assert '"field": "accuracy"' in html  # the spec is there too
    # The default renderer, by contrast, loads the libraries from a CDN.
    alt.renderers.enable("default")
    assert "cdn.jsdelivr" in chart._repr_mimebundle_()["text/html"]


def test_standalone_html_is_offline(layer_curves):
    html = plots.line_with_band(layer_curves, "layer", "accuracy", "low", "high").to_html(inline=True)
    assert "cdn.jsdelivr" not in html and not _script_sources(html)


def test_offline_html_escapes_script_end_in_data():
    html = plots.offline_html(alt.Chart(pd.DataFrame({"label": ["</script><b>"]})).mark_point().to_dict())
    assert html.count("</script>") == 2  # only the two script elements close


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node to run the page's JavaScript")
def test_two_offline_charts_run_on_one_page(tmp_path, layer_curves):
    """Run every script of two charts in one JS realm, as a browser page would: no redeclaration errors."""
    chart = plots.line_with_band(layer_curves, "layer", "accuracy", "low", "high")
    html = plots.offline_html(chart.to_dict()) + plots.offline_html(chart.to_dict())
    scripts = re.findall(r"<script[^>]*>(.*?)</script>", html, flags=re.DOTALL)
    assert len(scripts) == 4
    (tmp_path / "scripts.json").write_text(json.dumps(scripts))
    runner = """
    const vm = require("vm");
    const scripts = JSON.parse(require("fs").readFileSync(process.argv[2], "utf8"));
    const embedded = [];
    const page = {setTimeout, clearTimeout, setInterval, clearInterval, queueMicrotask, structuredClone, console};
    page.window = page; page.self = page;
    vm.createContext(page);
    vm.runInContext(scripts[0], page);  // chart 1: the bundle
    const realEmbed = page.vegaEmbed;
    delete page.vegaEmbed;
    vm.runInContext(scripts[2], page);  // chart 2's bundle executed again: no top-level names clash
    const recorder = (target, spec) => { embedded.push([target, spec.layer.length]); return Promise.resolve(); };
    page.vegaEmbed = recorder;  // vega-embed needs a DOM; record the calls instead
    vm.runInContext(scripts[1], page);  // chart 1: embed
    vm.runInContext(scripts[2], page);  // chart 2: bundle, skipped as vegaEmbed exists
    vm.runInContext(scripts[3], page);  // chart 2: embed
    console.log(JSON.stringify({bundle: typeof realEmbed, skipped: page.vegaEmbed === recorder, embedded}));
    """
    (tmp_path / "run.js").write_text(runner)
    done = subprocess.run(
        ["node", str(tmp_path / "run.js"), str(tmp_path / "scripts.json")],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["bundle"] == "function" and report["skipped"]
    targets = [target for target, _ in report["embedded"]]
    assert len(targets) == 2 and targets[0] != targets[1]
    assert [n_layers for _, n_layers in report["embedded"]] == [2, 2]
