"""Chart helpers produce the intended encodings; offline HTML loads nothing from the network."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import altair as alt
import browser
import numpy as np
import pandas as pd
import pytest
from layercollapse.site import plots
from layercollapse.site import vega


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


def _rows(spec: dict) -> list[dict]:
    """The inline data rows of a single-view spec (altair puts them in top-level datasets)."""
    return spec["data"]["values"] if "values" in spec["data"] else spec["datasets"][spec["data"]["name"]]


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


@pytest.fixture
def dynamics_cells() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Readout cells of three pruned networks (step x depth) and their located transitions."""
    steps, depths = np.repeat(np.arange(3), 4), np.tile(np.arange(4), 3)
    cells = pd.DataFrame({"step": steps, "depth": depths, "mean_dm": depths - 1.0 - steps, "accuracy": depths / 4,
                          "layer": depths - 1})
    along = pd.DataFrame({"step": [0, 1, 2], "transition_depth": pd.array([2, 3, None], dtype="Int64"),
                          "transition_layer": pd.array([1, 3, None], dtype="Int64"),
                          "removed_now": ["", "2", "0"], "removed_phase": ["", "Decisive", "Silent"]})
    return cells, along


def test_depth_heatmap_rings_the_transitions_and_hovers_every_mark(dynamics_cells):
    cells, along = dynamics_cells
    spec = plots.depth_heatmap(cells, "step", "mean_dm", x_title="pruning step", value_title="mean DM",
                               tooltip=("layer", "absent"), transitions=along).to_dict()
    rect, point = _encodings(spec)["rect"], _encodings(spec)["point"]
    assert (rect["x"]["field"], rect["x"]["type"], rect["y"]["field"], rect["y"]["sort"]) == (
        "step", "ordinal", "depth", "descending")
    assert rect["color"]["field"] == "mean_dm" and [t["field"] for t in rect["tooltip"]] == [
        "step", "depth", "layer", "mean_dm"]
    rings = spec["datasets"][spec["layer"][1]["data"]["name"]]
    assert [(row["step"], row["depth"]) for row in rings] == [(0, 2), (1, 3)]  # the step without one has no ring
    assert "transition_layer" in [t["field"] for t in point["tooltip"]]


def test_dynamics_panels_stack_one_column_with_a_shared_margin_scale(dynamics_cells):
    cells, along = dynamics_cells
    other = cells.assign(mean_dm=cells["mean_dm"] + 10)
    spec = plots.dynamics_panels([("A", cells, along), ("B", other, None)], "step", x_title="step",
                                 removals=along).to_dict()
    strip, *panels = spec["vconcat"]
    assert len(panels) == 4 and strip["height"] == 14
    strip_rows = spec["datasets"][strip["data"]["name"]]
    assert [(row["step"], row["removed_phase"]) for row in strip_rows] == [(1, "Decisive"), (2, "Silent")]
    domains = [_encodings(panel)["rect"]["color"]["scale"]["domain"] for panel in panels]
    assert domains[0] == domains[2] == [-3.0, 12.0] and domains[1] == domains[3] == [0, 1]
    assert [panel["title"] for panel in panels] == ["A: mean DM", "A: accuracy", "B: mean DM", "B: accuracy"]
    # A flat column of views: the responsive spec gives every row the page width.
    assert all(row.get("width") == "container" for row in vega.responsive_spec(spec)["vconcat"])


def _script_sources(html: str) -> list[str]:
    return re.findall(r"<script[^>]*\bsrc\s*=", html, flags=re.IGNORECASE)


def test_offline_rendering_inlines_javascript(restore_altair, layer_curves, monkeypatch):
    monkeypatch.delenv("QUARTO_PROJECT_ROOT", raising=False)
    monkeypatch.delenv(vega.VEGA_MODE_ENV, raising=False)
    vega.enable_offline_rendering()
    chart = plots.line_with_band(layer_curves, "layer", "accuracy", "low", "high", color="model")
    html = chart._repr_mimebundle_()["text/html"]
    assert "cdn.jsdelivr" not in html and not _script_sources(html)
    assert not re.search(r"""(src|href)\s*=\s*["']?https?://""", html)
    assert "window.vegaEmbed=" in html and len(html) > 500_000  # the bundle itself
    assert '"field":"accuracy"' in html  # the spec is there too (written compactly)
    # The default renderer, by contrast, loads the libraries from a CDN.
    alt.renderers.enable("default")
    assert "cdn.jsdelivr" in chart._repr_mimebundle_()["text/html"]


def _site_page(monkeypatch, root: Path) -> None:
    """Render as Quarto would: QUARTO_PROJECT_ROOT set, the kernel in the chapter's folder."""
    monkeypatch.delenv(vega.VEGA_MODE_ENV, raising=False)
    monkeypatch.setenv("QUARTO_PROJECT_ROOT", str(root))
    (root / "chapters").mkdir(exist_ok=True)
    monkeypatch.chdir(root / "chapters")


def test_under_quarto_a_chart_is_raw_html_loading_the_sites_one_bundle(tmp_path, monkeypatch, restore_altair,
                                                                        layer_curves):
    _site_page(monkeypatch, tmp_path)
    vega.enable_offline_rendering()
    chart = plots.line_with_band(layer_curves, "layer", "accuracy", "low", "high", color="model")
    bundle = chart._repr_mimebundle_()
    bundle = bundle[0] if isinstance(bundle, tuple) else bundle
    # No text/html: Quarto would add require.js and jQuery from a CDN to the page.
    assert set(bundle) == {"text/markdown"}
    markdown = bundle["text/markdown"]
    assert markdown.startswith("```{=html}\n") and markdown.endswith("```\n") and markdown.count("```") == 2
    assert len(markdown) < 20_000 and "window.vegaEmbed=" not in markdown  # a few kB, not the 0.9 MB bundle
    name = vega.vega_bundle_name()
    assert name == "vega-embed-vl" + "_".join(alt.SCHEMA_VERSION.lstrip("v").split(".")[:2]) + ".js"
    assert f'script.src = "../assets/vega/{name}"' in markdown
    written = tmp_path / "assets" / "vega" / name
    assert written.read_text() == vega._vega_embed_bundle() and "window.vegaEmbed=" in written.read_text()
    assert vega.specs_in_html(markdown) == [vega.compact_spec(vega.responsive_spec(chart.to_dict()))]
    assert vega.site_bundle_src(tmp_path, tmp_path) == f"assets/vega/{name}"
    mtime = written.stat().st_mtime_ns
    assert vega.write_vega_bundle(tmp_path) == written and written.stat().st_mtime_ns == mtime  # unchanged: kept
    monkeypatch.setenv(vega.VEGA_MODE_ENV, "inline")
    assert "text/html" in chart._repr_mimebundle_()
    monkeypatch.setenv(vega.VEGA_MODE_ENV, "cdn")
    with pytest.raises(ValueError, match="LAYERCOLLAPSE_VEGA='cdn': use 'site'"):
        vega.vega_mode()


def test_standalone_html_is_offline(layer_curves):
    html = plots.line_with_band(layer_curves, "layer", "accuracy", "low", "high").to_html(inline=True)
    assert "cdn.jsdelivr" not in html and not _script_sources(html)


def test_offline_html_escapes_script_end_in_data():
    html = vega.offline_html(alt.Chart(pd.DataFrame({"label": ["</script><b>"]})).mark_point().to_dict())
    assert html.count("</script>") == 2  # only the two script elements close


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node to run the page's JavaScript")
def test_two_offline_charts_run_on_one_page(tmp_path, layer_curves):
    """Run every script of two charts in one JS realm, as a browser page would: no redeclaration errors."""
    chart = plots.line_with_band(layer_curves, "layer", "accuracy", "low", "high")
    html = vega.offline_html(chart.to_dict()) + vega.offline_html(chart.to_dict())
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


def test_integer_x_gets_whole_number_ticks(layer_curves):
    line = _encodings(plots.line_with_band(layer_curves, "layer", "accuracy", "low", "high").to_dict())["line"]
    assert line["x"]["axis"] == {"format": "d", "tickMinStep": 1}
    fractions = layer_curves.assign(fraction=layer_curves["layer"] / 8)
    line = _encodings(plots.line_with_band(fractions, "fraction", "accuracy", "low", "high").to_dict())["line"]
    assert "format" not in line["x"].get("axis", {})


def test_every_mark_of_a_line_with_band_has_a_tooltip(layer_curves):
    encodings = _encodings(plots.line_with_band(layer_curves, "layer", "accuracy", "low", "high", "model").to_dict())
    assert set(encodings) == {"area", "line"} and all("tooltip" in encoding for encoding in encodings.values())


def test_series_scale_keeps_one_colour_per_schedule_on_every_chart():
    one = plots.series_scale(["random", "iterative", "qwen"]).to_dict()
    other = plots.series_scale(["iterative", "reverse", "llama", "qwen"]).to_dict()
    colour = {name: dict(zip(scale["domain"], scale["range"])) for name, scale in (("one", one), ("other", other))}
    assert colour["one"]["iterative"] == colour["other"]["iterative"] == plots.PALETTE[0]
    assert colour["one"]["random"] == plots.series_color("random")
    # Unnamed series take free palette colours, never a schedule's.
    assert colour["other"]["llama"] not in {colour["other"]["iterative"], colour["other"]["reverse"]}
    assert len(set(colour["other"].values())) == 4
    # Key and displayed name of a schedule share the colour.
    assert plots.series_color("block_influence") == plots.series_color("ShortGPT BI")


def test_chance_rule_and_collapse_marker_carry_tooltips():
    rule = plots.chance_rule(0.25, "accuracy").to_dict()
    assert _rows(rule) == [{"meaning": "chance (best constant answer)", "level": 0.25}]
    assert rule["encoding"]["y"]["title"] == "accuracy" and rule["encoding"]["tooltip"]
    markers = pd.DataFrame({"step": [5], "step_ci": ["[4, 6]"], "fraction_removed": [0.2], "fraction_low": [0.16],
                            "fraction_high": [0.24]})
    encodings = _encodings(plots.collapse_marker(markers).to_dict())
    assert set(encodings) == {"rect", "rule"} and all("tooltip" in encoding for encoding in encodings.values())
    assert (encodings["rect"]["x"]["field"], encodings["rect"]["x2"]["field"]) == ("fraction_low", "fraction_high")


def test_option_heatmap_reference_columns_follow_the_layers():
    frame = pd.DataFrame({"layer": np.repeat([-1, 0, 1], 2), "option": list("AB") * 3, "fraction": 0.5})
    gold = pd.DataFrame({"source": ["gold", "gold"], "option": ["A", "B"], "fraction": [0.4, 0.6]})
    spec = plots.option_heatmap(frame, "layer", "option", "fraction", reference=gold).to_dict()
    assert spec["encoding"]["x"]["sort"] == ["-1", "0", "1", "gold"]
    assert len(_rows(spec)) == 8


def test_responsive_spec_fits_single_layered_and_stacked_views(layer_curves):
    line = plots.line_with_band(layer_curves, "layer", "accuracy", "low", "high")
    for chart in (line, alt.vconcat(line, line)):
        spec = vega.responsive_spec(chart.to_dict())
        assert spec["autosize"] == {"type": "fit-x", "contains": "padding"}
        rows = spec.get("vconcat", [spec])
        assert all(row["width"] == "container" for row in rows)
    # Side-by-side panels and explicit widths keep their widths.
    for chart in (alt.hconcat(line, line), line.properties(width=300), alt.vconcat(line, line.properties(width=300))):
        spec = vega.responsive_spec(chart.to_dict())
        assert "autosize" not in spec and spec == chart.to_dict()


def test_specs_in_html_reads_back_every_chart(layer_curves):
    chart = plots.line_with_band(layer_curves.assign(model="</script>"), "layer", "accuracy", "low", "high", "model")
    html = vega.offline_html(chart.to_dict()) + vega.offline_html(plots.chance_rule(0.3).to_dict())
    specs = vega.specs_in_html(html)
    assert len(specs) == 2 and specs[1]["mark"]["type"] == "rule"
    assert specs[0] == vega.compact_spec(vega.responsive_spec(chart.to_dict()))  # "</" escaping round-trips


def _chart_page(tmp_path, charts: dict[str, alt.TopLevelMixin], column_px: int) -> str:
    """A page with each chart's offline HTML in a column ``column_px`` wide, as Quarto's body column."""
    body = "".join(f'<section style="width: {column_px}px">{vega.offline_html(chart.to_dict())}</section>'
                   for chart in charts.values())
    path = tmp_path / f"charts-{column_px}.html"
    path.write_text(f"<!doctype html><html><head><meta charset='utf-8'></head><body style='margin: 0'>{body}</body></html>")
    return path.as_uri()


@pytest.mark.slow
@pytest.mark.browser
def test_offline_charts_draw_inside_their_column_in_a_browser(tmp_path, restore_altair, layer_curves):
    """In Chromium with no network: every kind of chart the chapters draw fits a 900-px window and a 420-px column."""
    plots.use_site_theme()
    line = alt.layer(plots.phase_shading(3, 8), plots.line_with_band(layer_curves, "layer", "accuracy", "low", "high",
                                                                       "model"), plots.chance_rule(0.25, "accuracy"))
    frame = pd.DataFrame({"layer": np.repeat(np.arange(-1, 28), 4), "option": list("ABCD") * 29, "fraction": 0.25})
    gold = pd.DataFrame({"source": ["gold"] * 4, "option": list("ABCD"), "fraction": 0.25})
    steps, depths = np.repeat(np.arange(12), 16), np.tile(np.arange(16), 12)
    cells = pd.DataFrame({"step": steps, "depth": depths, "mean_dm": depths - steps / 2, "accuracy": depths / 16})
    along = pd.DataFrame({"step": np.arange(12), "transition_depth": np.arange(12) % 16,
                          "removed_now": [""] + ["3"] * 11, "removed_phase": [""] + ["Silent", "Decisive"] * 5 + ["Silent"]})
    charts = {"layered": line, "stacked": alt.vconcat(line, line),
              "heatmap": plots.option_heatmap(frame, "layer", "option", "fraction", reference=gold),
              "dynamics": plots.dynamics_panels([("pruned", cells, along)], "step", x_title="step", removals=along)}
    for column_px in (860, 420):
        [report] = browser.open_pages([_chart_page(tmp_path, charts, column_px)], width=900)
        assert report.console_errors == [] and report.outside_requests == []
        assert len(report.charts) == len(charts)
        for name, chart in zip(charts, report.charts):
            assert chart["drawn"], name
            assert 0.5 * column_px < chart["width"] <= column_px, (name, column_px, chart)
        assert report.scroll_width <= 900


@pytest.mark.slow
@pytest.mark.browser
def test_site_charts_load_the_bundle_once_and_draw_in_a_browser(tmp_path, monkeypatch, restore_altair, layer_curves):
    """Three charts of a page rendered in site mode, read in Chromium with no network: one bundle request."""
    _site_page(monkeypatch, tmp_path)
    plots.use_site_theme()
    vega.enable_offline_rendering()
    line = plots.line_with_band(layer_curves, "layer", "accuracy", "low", "high", "model")
    charts = [line, alt.vconcat(line, line), plots.chance_rule(0.25, "accuracy")]
    blocks = [chart._repr_mimebundle_() for chart in charts]
    html = "".join((b[0] if isinstance(b, tuple) else b)["text/markdown"].removeprefix("```{=html}\n").removesuffix("```\n")
                   for b in blocks)
    page = tmp_path / "chapters" / "page.html"
    page.write_text(f"<!doctype html><html><head><meta charset='utf-8'></head><body><main style='width: 860px'>"
                    f"{html}</main></body></html>")
    [report] = browser.open_pages([page.as_uri()], width=900)
    assert report.console_errors == [] and report.outside_requests == []
    assert [Path(url).name for url in report.scripts] == [vega.vega_bundle_name()]  # loaded once for 3 charts
    assert len(report.charts) == 3 and all(chart["drawn"] and chart["width"] <= 860 for chart in report.charts)


def test_marks_without_tooltip_finds_bare_marks_through_layers_and_concatenation(layer_curves):
    bare = alt.Chart(layer_curves).mark_point().encode(x="layer:Q")
    tipped = bare.encode(tooltip=["layer:Q"])
    assert vega.marks_without_tooltip(tipped.to_dict()) == []
    assert vega.marks_without_tooltip(bare.to_dict()) == ["/ point"]
    assert vega.marks_without_tooltip(alt.vconcat(tipped, alt.layer(tipped, bare)).to_dict()) == ["/vconcat[1]/layer[1] point"]
    # a tooltip on the parent layer's encoding, or on the mark definition, counts
    assert vega.marks_without_tooltip(alt.layer(bare, bare).encode(tooltip=["layer:Q"]).to_dict()) == []
    assert vega.marks_without_tooltip(alt.Chart(layer_curves).mark_point(tooltip=True).to_dict()) == []
    # every helper the chapters draw with has a tooltip on every mark
    helpers = [plots.line_with_band(layer_curves, "layer", "accuracy", "low", "high", "model"),
               plots.phase_shading(3, 8), plots.chance_rule(0.25, "accuracy"),
               plots.reference_rules({"intact": 0.7, "chance": 0.25})]
    assert [vega.marks_without_tooltip(chart.to_dict()) for chart in helpers] == [[]] * len(helpers)


def test_every_schedule_has_its_colour_and_concatenated_charts_share_one_scale():
    from layercollapse.pruning import schedule_labels

    for key, name in schedule_labels().items():
        assert plots.series_color(key) == plots.series_color(name) is not None, key
    frame = pd.DataFrame({"x": [0, 1, 0, 1], "y": [0.5, 0.4, 0.5, 0.3], "low": 0.0, "high": 1.0,
                          "schedule": ["iterative", "iterative", "reverse", "reverse"]})
    page = ["iterative", "block_influence", "reverse"]
    first = plots.line_with_band(frame[frame["schedule"] == "iterative"], "x", "y", "low", "high", "schedule",
                                 series=page).to_dict()
    second = plots.line_with_band(frame, "x", "y", "low", "high", "schedule", series=page).to_dict()
    scales = [chart["layer"][1]["encoding"]["color"]["scale"] for chart in (first, second)]
    assert scales[0] == scales[1] and scales[0]["domain"] == page
    assert dict(zip(scales[0]["domain"], scales[0]["range"]))["reverse"] == plots.series_color("reverse")


def test_a_page_keeps_four_significant_digits_of_its_chart_data_and_writes_it_compactly():
    frame = pd.DataFrame({"x": [0, 1], "y": [0.123456789, 2 / 3], "label": ["a", "b"]})
    chart = alt.Chart(frame).mark_point(tooltip=True).encode(x="x:Q", y="y:Q")
    compact = vega.compact_spec(chart.to_dict())
    (rows,) = compact["datasets"].values()
    assert [row["y"] for row in rows] == [0.1235, 0.6667] and [row["x"] for row in rows] == [0, 1]
    html = vega.offline_html(chart.to_dict())
    assert vega.specs_in_html(html)[0]["datasets"] == compact["datasets"]
    assert "0.123456789" not in html and '"mark":{' in html  # rounded, and no spaces after separators


def test_the_phase_diagram_axes_show_the_data_s_whole_numbers_not_the_fan_of_marks():
    from layercollapse.site.plots import collapse_phase_diagram

    # six networks at the origin fan out to negative x and y; the axes must still start at 0
    table = pd.DataFrame({"n_silent": [0] * 6 + [1, 2, 3], "n_decisive": [0] * 6 + [0, 0, 1], "accuracy": 0.5,
                          "design": "random order", "seed": 0, "step": range(9), "collapsed": [False] * 8 + [True]})
    spec = collapse_phase_diagram(table).to_dict()
    x, y = spec["encoding"]["x"], spec["encoding"]["y"]
    assert min(spec["data"]["values"] if "values" in spec["data"] else next(iter(spec["datasets"].values())),
               key=lambda row: row["x"])["x"] < 0  # the fan does reach below 0 ...
    assert x["axis"]["values"] == [0, 1, 2, 3] and y["axis"]["values"] == [0, 1]  # ... the ticks stay on the data
    assert x["scale"]["domain"][0] > -1 and x["scale"]["nice"] is False
    assert spec["encoding"]["stroke"]["title"] == "collapse" and spec["encoding"]["stroke"]["legend"]["titleLimit"] == 0
