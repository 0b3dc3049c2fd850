"""Altair helpers shared by the chapters: one theme, offline rendering, three chart kinds.

Chapters call ``use_site_theme()`` and ``enable_offline_rendering()`` once in their
setup cell, then build figures from tidy DataFrames with the helpers below, e.g.
``alt.layer(phase_shading(12, 32), line_with_band(df, "layer", "acc", "low", "high", "model"))``.
"""

from __future__ import annotations

import functools
import json
import os
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import altair as alt
import pandas as pd
from layercollapse.paths import project_root

__all__ = [
    "PALETTE",
    "PHASE_COLORS",
    "THEME_NAME",
    "OFFLINE_RENDERER",
    "use_site_theme",
    "enable_offline_rendering",
    "offline_html",
    "vega_mode",
    "vega_bundle_name",
    "write_vega_bundle",
    "site_bundle_src",
    "SERIES_COLORS",
    "series_scale",
    "responsive_spec",
    "specs_in_html",
    "marks_without_tooltip",
    "line_with_band",
    "phase_shading",
    "option_heatmap",
    "depth_heatmap",
    "removal_strip",
    "dynamics_panels",
    "reference_rules",
    "chance_rule",
    "collapse_marker",
]

THEME_NAME = "layercollapse"
VEGA_MODE_ENV = "LAYERCOLLAPSE_VEGA"  # "site" or "inline": how charts get the Vega JavaScript (see vega_mode)
SITE_ASSETS_DIR = "assets/vega"  # the bundle's folder in the project, a Quarto resource
OFFLINE_RENDERER = "layercollapse-offline"

# Okabe-Ito, colour-blind safe; series (models, schedules) take colours in this order.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]
# Phases keep fixed colours everywhere (paler than any series, they sit behind lines).
PHASE_COLORS = {"Silent Phase": "#9A9A9A", "Decisive Phase": "#009E73"}
#: Series that recur across chapters keep one colour on every page: pruning schedules (by
#: key and by the name the site shows) and the two phases when they are lines (phase pruning).
#: Other series (models, measures) take the PALETTE colours these leave free, in order.
SERIES_COLORS = {
    "iterative": PALETTE[0], "Iterative Pruning": PALETTE[0],
    "block_influence": PALETTE[1], "ShortGPT BI": PALETTE[1],
    "angular_distance": PALETTE[3], "angular distance": PALETTE[3],
    "reverse": PALETTE[5], "reverse order": PALETTE[5],
    "random": PALETTE[7], "random order": PALETTE[7],
    "random_in_range": PALETTE[6], "random within a range": PALETTE[6],
    "decisive_first": PALETTE[2], "Decisive Phase first": PALETTE[2],
    "silent": "#6E6E6E", "Silent Phase": "#6E6E6E",
    "decisive": PHASE_COLORS["Decisive Phase"], "Decisive Phase": PHASE_COLORS["Decisive Phase"],
}
# Autosizing that keeps a chart, axes and legend included, inside the width of its page column.
_FIT_WIDTH = {"type": "fit-x", "contains": "padding"}
_SPEC_CALL = ".catch(console.error);\n})("  # offline_html passes the spec right after this


@alt.theme.register(THEME_NAME, enable=False)
def _site_theme() -> alt.theme.ThemeConfig:
    """The site's Altair theme: sizes, fonts and the category palette."""
    return {
        "config": {
            "view": {"continuousWidth": 600, "continuousHeight": 320, "stroke": None},
            "font": "Source Sans Pro, Helvetica, Arial, sans-serif",
            "axis": {"labelFontSize": 12, "titleFontSize": 13, "grid": True, "gridOpacity": 0.4},
            # Below the plot, so a chart as wide as its column keeps its plot area.
            "legend": {"labelFontSize": 12, "titleFontSize": 13, "orient": "bottom"},
            "header": {"labelFontSize": 13, "titleFontSize": 13},
            "title": {"fontSize": 15, "anchor": "start"},
            "range": {"category": PALETTE},
            "line": {"strokeWidth": 2},
        }
    }


def use_site_theme() -> None:
    """Enable the site theme (registered on import as ``THEME_NAME``) for all later charts."""
    alt.theme.enable(THEME_NAME)


@functools.cache
def _vega_embed_bundle() -> str:
    """vega + vega-lite + vega-embed as one JavaScript bundle, from vl-convert (no network; ~0.9 MB)."""
    import vl_convert

    # vl-convert names Vega-Lite versions 'v6_4' where altair says 'v6.4.1'.
    vl_version = "_".join(alt.SCHEMA_VERSION.split(".")[:2])
    return vl_convert.javascript_bundle(vl_version=vl_version)


def vega_bundle_name() -> str:
    """File name of the site's Vega bundle, versioned by the Vega-Lite major.minor altair writes."""
    return f"vega-embed-vl{'_'.join(alt.SCHEMA_VERSION.lstrip('v').split('.')[:2])}.js"


def write_vega_bundle(root: str | os.PathLike) -> Path:
    """Write the Vega bundle to ``<root>/assets/vega/`` (a site resource; Quarto copies it to ``_site/``).

    Rewrites the file only when its content differs (atomically: temp file + rename).

    Returns:
        the bundle's path.
    """
    path = Path(root) / SITE_ASSETS_DIR / vega_bundle_name()
    bundle = _vega_embed_bundle()
    if not path.is_file() or path.read_text("utf-8") != bundle:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(bundle, "utf-8")
        os.replace(tmp, path)
    return path


@functools.cache
def _bundle_written(root: str) -> Path:
    """:func:`write_vega_bundle` once per process and project (not once per chart: it reads 0.9 MB to compare)."""
    return write_vega_bundle(root)


def vega_mode() -> str:
    """``site`` (charts load one bundle from the site's resources) when Quarto renders the page
    (``QUARTO_PROJECT_ROOT`` is set), else ``inline`` (each chart carries it, as JupyterLab needs);
    ``$LAYERCOLLAPSE_VEGA`` overrides."""
    mode = os.environ.get(VEGA_MODE_ENV) or ("site" if os.environ.get("QUARTO_PROJECT_ROOT") else "inline")
    if mode not in ("site", "inline"):
        raise ValueError(f"{VEGA_MODE_ENV}={mode!r}: use 'site' (one bundle per site) or 'inline' (one per chart)")
    return mode


def site_bundle_src(root: str | os.PathLike, page_dir: str | os.PathLike) -> str:
    """URL of the site's Vega bundle relative to a page in ``page_dir`` (the kernel's folder under Quarto)."""
    return Path(os.path.relpath(Path(root) / SITE_ASSETS_DIR / vega_bundle_name(), page_dir)).as_posix()


def offline_html(spec: dict[str, Any], embed_options: dict[str, Any] | None = None,
                 bundle_src: str | None = None) -> str:
    """An HTML snippet that draws a Vega-Lite spec with no network, safe to repeat on one page.

    altair's own ``template="inline"`` output cannot appear twice on a page: its bundle
    and its ``const spec`` are top-level declarations, so the second chart throws
    "Identifier has already been declared". Here the bundle runs inside a function,
    only if ``window.vegaEmbed`` is not defined yet, and each chart's code is scoped.

    Args:
        spec: a Vega-Lite spec dict with its data inlined (``chart.to_dict()``).
        embed_options: options for vega-embed (``alt.renderers.set_embed_options``).
        bundle_src: URL of the Vega bundle (:func:`write_vega_bundle`): the page loads it once, whatever its
            number of charts, and each chart draws when it has loaded. None: inline the bundle (~0.9 MB).

    Returns:
        HTML text (a ``div`` and ``script`` elements; no link outside the page or ``bundle_src``).
    """
    output_div = f"layercollapse-vis-{uuid.uuid4().hex}"
    spec = responsive_spec(spec)
    embed_options = {"mode": "vega-lite", **(embed_options or {})}
    # "</" would end the script element if a data string contained "</script>".
    spec_json = json.dumps(spec).replace("</", "<\\/")
    options_json = json.dumps(embed_options).replace("</", "<\\/")
    # vega-embed makes its element inline-block; a "container" width needs a block that fills the column.
    div = f'<div class="vega-visualization" id="{output_div}" style="width: 100%"></div>\n'
    if bundle_src is None:
        return (
            div + '<script type="text/javascript">\n'
            'if (typeof window.vegaEmbed === "undefined") { (function () {\n'
            f"{_vega_embed_bundle()}\n"
            "})(); }\n"
            "</script>\n"
            '<script type="text/javascript">\n'
            "(function (spec, embedOpt) {\n"
            f'  vegaEmbed("#{output_div}", spec, embedOpt).catch(console.error);\n'
            f"}})({spec_json}, {options_json});\n"
            "</script>\n"
        )
    return (
        div + '<script type="text/javascript">\n'
        "(function (spec, embedOpt) {\n"
        # One promise per page loads the bundle once; every chart waits for it.
        "  var page = window;\n"
        "  page.layercollapseVega = page.layercollapseVega || new Promise(function (resolve, reject) {\n"
        '    if (typeof page.vegaEmbed !== "undefined") { return resolve(); }\n'
        '    var script = document.createElement("script");\n'
        f"    script.src = {json.dumps(bundle_src)};\n"
        "    script.onload = resolve;\n"
        '    script.onerror = function () { reject(new Error("could not load " + script.src)); };\n'
        "    document.head.appendChild(script);\n"
        "  });\n"
        "  page.layercollapseVega.then(function () {\n"
        f'    return vegaEmbed("#{output_div}", spec, embedOpt).catch(console.error);\n'
        f"  }}).catch(console.error);\n}})({spec_json}, {options_json});\n"
        "</script>\n"
    )


def responsive_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec with its width following the page column: no chart overflows a narrow window.

    A single or layered view, and every row of a vertical concatenation, that has no
    numeric width gets ``width: "container"``; the whole chart is then fitted, axes and
    legend included (``autosize: fit-x, contains: padding``). Horizontal and wrapped
    concatenations and facets keep their widths: Vega-Lite cannot share a container width
    between columns, so their panels need fixed widths that fit the column.

    Args:
        spec: a Vega-Lite spec dict (``chart.to_dict()``); not modified.

    Returns:
        A new spec dict.
    """
    spec = dict(spec)
    if any(key in spec for key in ("hconcat", "concat", "facet", "repeat")):
        return spec
    if "vconcat" in spec:
        rows = [dict(row) for row in spec["vconcat"]]
        if not all(_fills_width(row) for row in rows):
            return spec
        for row in rows:
            row.setdefault("width", "container")
        spec["vconcat"] = rows
    elif not _fills_width(spec):
        return spec
    else:
        spec.setdefault("width", "container")
    spec.setdefault("autosize", _FIT_WIDTH)
    return spec


def _fills_width(view: dict[str, Any]) -> bool:
    """A single or layered view without a numeric width (it may take the container's)."""
    is_view = "mark" in view or "layer" in view
    return is_view and not isinstance(view.get("width"), (int, float))


def specs_in_html(html: str) -> list[dict[str, Any]]:
    """The Vega-Lite specs that ``offline_html`` snippets in ``html`` draw, in page order.

    For tests and checks of rendered chapters (every mark has a tooltip, widths fit).
    """
    decoder = json.JSONDecoder()
    specs, start = [], 0
    while (found := html.find(_SPEC_CALL, start)) >= 0:
        start = found + len(_SPEC_CALL)
        if html.startswith("{", start):
            spec, _ = decoder.raw_decode(html, start)  # "<\\/" is JSON's escaped "/"
            specs.append(spec)
    return specs


def marks_without_tooltip(spec: dict[str, Any], inherited: dict[str, Any] | None = None, where: str = "") -> list[str]:
    """Path and type of every mark of a Vega-Lite spec that shows no tooltip (none: ``[]``).

    A mark has a tooltip when its encoding (or a parent layer's) has one, or when its mark definition
    sets ``tooltip``. For checks of rendered chapters: every mark of the site explains itself on hover.
    """
    encoding = {**(inherited or {}), **spec.get("encoding", {})}
    found = []
    for key in ("layer", "vconcat", "hconcat", "concat"):
        for i, child in enumerate(spec.get(key, [])):
            found += marks_without_tooltip(child, encoding, f"{where}/{key}[{i}]")
    if isinstance(spec.get("spec"), dict):  # facet and repeat
        found += marks_without_tooltip(spec["spec"], encoding, f"{where}/spec")
    if "mark" in spec:
        mark = spec["mark"]
        kind = mark if isinstance(mark, str) else mark.get("type", "?")
        if "tooltip" not in encoding and not (isinstance(mark, dict) and mark.get("tooltip")):
            found.append(f"{where or '/'} {kind}")
    return found


def _offline_renderer(spec: dict[str, Any], **metadata: Any) -> dict[str, str]:
    """Renderer plugin: the chart as ``offline_html``.

    Inline mode: a ``text/html`` mimebundle. Site mode (Quarto): a ``text/markdown`` raw HTML block
    loading the site's bundle, since Quarto adds require.js and jQuery from a CDN to every page with a
    ``text/html`` output.
    """
    if vega_mode() == "inline":
        return {"text/html": offline_html(spec, metadata.get("embed_options"))}
    root = os.environ.get("QUARTO_PROJECT_ROOT") or project_root()
    _bundle_written(str(root))
    html = offline_html(spec, metadata.get("embed_options"), bundle_src=site_bundle_src(root, os.getcwd()))
    return {"text/markdown": f"```{{=html}}\n{html}```\n"}


def enable_offline_rendering() -> None:
    """Make charts display with no internet, from the Vega JavaScript of ``vl-convert-python`` (no CDN).

    Registers and enables the renderer ``OFFLINE_RENDERER``. In JupyterLab and the test harness
    (:func:`vega_mode` ``inline``) each chart's ``text/html`` carries the bundle (~0.9 MB; run once per
    page). Rendered by Quarto (``site``), a chart is a few kB of raw HTML that loads
    ``assets/vega/<bundle>`` once per page, a file :func:`write_vega_bundle` writes and Quarto copies
    into the site (``project: resources`` and the pre-render script ``scripts/site_assets.py``).
    """
    alt.renderers.register(OFFLINE_RENDERER, _offline_renderer)
    alt.renderers.enable(OFFLINE_RENDERER)


def series_scale(values: Sequence[Any]) -> alt.Scale:
    """Colour scale of a nominal series column: SERIES_COLORS where named, free PALETTE colours otherwise.

    Args:
        values: the series' values in legend order (e.g. ``df["schedule"].unique()``).
    """
    domain = list(dict.fromkeys(str(value) for value in values))
    taken = {SERIES_COLORS[value] for value in domain if value in SERIES_COLORS}
    free = iter([color for color in PALETTE if color not in taken] + PALETTE)
    return alt.Scale(domain=domain, range=[SERIES_COLORS.get(value) or next(free) for value in domain])


def _x_axis(values: pd.Series) -> alt.Axis:
    """Whole-number ticks for a column of integers (layer, step, k); default ticks otherwise."""
    if pd.api.types.is_integer_dtype(values):
        return alt.Axis(format="d", tickMinStep=1)
    return alt.Axis()


def _numeric_tooltip(field: str, title: str | None = None) -> alt.Tooltip:
    """Tooltip of a quantitative column, three decimals."""
    return alt.Tooltip(field, type="quantitative", format=".3f", title=title or field)


def line_with_band(
    df: pd.DataFrame,
    x: str,
    y: str,
    low: str,
    high: str,
    color: str | None = None,
    tooltip: Sequence[str] = ("model", "task"),
    x_title: str | None = None,
    y_title: str | None = None,
    points: bool = True,
    series: Sequence[Any] | None = None,
) -> alt.LayerChart:
    """Line of ``y`` against ``x`` over a shaded confidence band [low, high], one series per ``color``.

    Args:
        df: tidy, one row per (series, x); columns named by the other arguments.
        x: quantitative column (layer index, pruning step, fraction removed); an integer
            column gets whole-number ticks.
        y, low, high: quantitative columns: estimate and interval bounds, same units.
        color: nominal column separating series (model, schedule), or None for one series;
            coloured by ``series_scale`` (one colour per schedule across the site).
        tooltip: extra columns shown on hover besides x, y and the interval; those
            missing from ``df`` are skipped, so the default suits any data.
        x_title, y_title: axis titles (default: the column names).
        points: draw a point at each x, which also makes hovering easy.
        series: every value of ``color`` on the page, in legend order (default: those in ``df``): charts
            concatenated into one figure pass the same ones, so their shared legend gives each its colour.

    Returns:
        LayerChart (band, line); layer it over ``phase_shading`` as needed.
    """
    missing = [column for column in (x, y, low, high) + ((color,) if color else ()) if column not in df.columns]
    if missing:
        raise KeyError(f"columns {missing} are not in the DataFrame (it has {list(df.columns)})")
    extra = [column for column in tooltip if column in df.columns and column not in (x, color)]
    tooltips = [alt.Tooltip(color, type="nominal")] if color else []
    tooltips += [alt.Tooltip(column) for column in extra]
    tooltips += [
        alt.Tooltip(x, type="quantitative", title=x_title or x),
        _numeric_tooltip(y, y_title),
        _numeric_tooltip(low, f"CI low ({low})"),
        _numeric_tooltip(high, f"CI high ({high})"),
    ]
    encoding: dict[str, Any] = {"x": alt.X(x, type="quantitative", title=x_title or x, axis=_x_axis(df[x]))}
    if color:
        domain = df[color].unique() if series is None else series
        encoding["color"] = alt.Color(color, type="nominal", scale=series_scale(domain))
    base = alt.Chart(df).encode(**encoding)
    band = base.mark_area(opacity=0.2).encode(
        y=alt.Y(low, type="quantitative", title=y_title or y), y2=alt.Y2(high), tooltip=tooltips
    )
    line = base.mark_line(point=points).encode(y=alt.Y(y, type="quantitative", title=y_title or y), tooltip=tooltips)
    return alt.layer(band, line)


def phase_shading(transition_layer: int | None, n_layers: int, x_title: str = "layer") -> alt.Chart:
    """Background rectangles: Silent Phase before the transition layer, Decisive Phase from it.

    Layer l covers [l - 0.5, l + 0.5] on the x axis, so the boundary sits between
    the last Silent and the first Decisive layer. Phases use the ``fill`` channel
    with fixed colours, leaving ``color`` to the series layered on top.

    Args:
        transition_layer: first Decisive layer (original index), or None: all Silent.
        n_layers: layers of the intact model (x spans 0 .. n_layers - 1).
        x_title: axis title, to match the chart it is layered with.

    Returns:
        Chart of ``mark_rect``, to be used as ``alt.layer(phase_shading(...), line)``.
    """
    if transition_layer is not None and not 0 <= transition_layer < n_layers:
        raise ValueError(f"transition_layer {transition_layer} is outside 0..{n_layers - 1}")
    boundary = n_layers if transition_layer is None else transition_layer
    phases = pd.DataFrame(
        {
            "phase": ["Silent Phase", "Decisive Phase"],
            "start": [-0.5, boundary - 0.5],
            "end": [boundary - 0.5, n_layers - 0.5],
        }
    )
    phases = phases[phases["end"] > phases["start"]]  # drop an empty phase
    return (
        alt.Chart(phases)
        .mark_rect(opacity=0.12)
        .encode(
            x=alt.X("start", type="quantitative", title=x_title, scale=alt.Scale(nice=False, zero=False)),
            x2=alt.X2("end"),
            fill=alt.Fill(
                "phase",
                type="nominal",
                scale=alt.Scale(domain=list(PHASE_COLORS), range=list(PHASE_COLORS.values())),
                legend=alt.Legend(title="phase"),
            ),
            tooltip=[alt.Tooltip("phase", type="nominal")],
        )
    )


def option_heatmap(df: pd.DataFrame, x: str, option: str, fraction: str, x_title: str | None = None,
                   reference: pd.DataFrame | None = None) -> alt.Chart:
    """Option Frequency heatmap: share of items predicted as each option, per layer or step.

    Args:
        df: tidy, one row per (x, option).
        x: ordinal column (layer index or pruning step).
        option: nominal column (option letter A, B, C, ...).
        fraction: quantitative column in [0, 1], fraction of items predicted as that option.
        x_title: axis title (default: the column name).
        reference: optional rows drawn as extra columns after the last x, e.g. the gold
            distribution (``transition.gold_frequency_frame``: its ``source`` names the
            column); one chart instead of two side by side, so it fits any width.

    Returns:
        Chart of ``mark_rect`` with a [0, 1] sequential colour scale.
    """
    frame = df[[x, option, fraction]].copy()
    order = list(dict.fromkeys(frame[x].tolist()))
    if reference is not None:
        extra = reference.rename(columns={"source": x})[[x, option, fraction]]
        order += list(dict.fromkeys(extra[x].tolist()))
        frame = pd.concat([frame, extra], ignore_index=True)
    frame[x] = frame[x].astype(str)
    return (
        alt.Chart(frame)
        .mark_rect()
        .encode(
            x=alt.X(x, type="ordinal", title=x_title or x, sort=[str(value) for value in order],
                    axis=alt.Axis(labelAngle=0, labelOverlap=True)),
            y=alt.Y(option, type="nominal", title="predicted option", sort="ascending"),
            color=alt.Color(
                fraction, type="quantitative", scale=alt.Scale(domain=[0, 1], scheme="blues"), title="fraction of items"
            ),
            tooltip=[alt.Tooltip(x, type="ordinal", title=x_title or x), alt.Tooltip(option, type="nominal"),
                     _numeric_tooltip(fraction)],
        )
    )


def depth_heatmap(cells: pd.DataFrame, x: str, value: str, *, x_title: str, value_title: str,
                  domain: Sequence[float] | None = None, tooltip: Sequence[str] = (),
                  transitions: pd.DataFrame | None = None) -> alt.LayerChart:
    """The readout of a sequence of pruned networks: ``x`` (pruning step or k) against the depth of the
    read-out layer among the remaining layers (0 = embeddings, at the bottom), coloured by ``value``.

    Args:
        cells: tidy, one row per (x, depth) (``claims.dynamics.dynamics_table`` / ``seed_mean_dynamics``).
        domain: colour-scale domain (accuracy: (0, 1)); None: the data's range.
        tooltip: extra columns of ``cells`` shown on hover (missing ones skipped).
        transitions: rows (x, transition_depth) of the located transitions, drawn as rings; a
            ``transition_layer``, ``share_kept`` or ``n_seeds`` column goes into their tooltip.
    Returns:
        the heatmap (``mark_rect``) with the rings layered on it.
    """
    x_axis = _step_axis(x, x_title)
    y_axis = alt.Y("depth", type="ordinal", sort="descending", title="depth among remaining layers",
                   axis=alt.Axis(labelOverlap=True))
    hover = [alt.Tooltip(x, type="ordinal", title=x_title), alt.Tooltip("depth", type="ordinal")]
    hover += [alt.Tooltip(column) for column in tooltip if column in cells.columns and column not in (x, "depth", value)]
    scheme = "blues" if value == "accuracy" else "viridis"
    scale = alt.Scale(scheme=scheme) if domain is None else alt.Scale(domain=list(domain), scheme=scheme)
    heat = alt.Chart(cells).mark_rect().encode(
        x=x_axis, y=y_axis, color=alt.Color(value, type="quantitative", scale=scale, title=value_title),
        tooltip=[*hover, _numeric_tooltip(value, value_title)])
    layers = [heat]
    if transitions is not None:
        found = transitions.dropna(subset=["transition_depth"]).rename(columns={"transition_depth": "depth"})
        found = found.astype({"depth": int})
        extra = [alt.Tooltip(column) for column in ("transition_layer", "share_kept", "n_seeds") if column in found]
        layers.append(alt.Chart(found).mark_point(shape="circle", size=70, filled=False, color="black",
                                                  strokeWidth=1.5).encode(
            x=x_axis, y=y_axis, tooltip=[alt.Tooltip(x, type="ordinal", title=x_title),
                                         alt.Tooltip("depth", type="ordinal", title="transition depth"), *extra]))
    return alt.layer(*layers)


def _step_axis(x: str, title: str | None) -> alt.X:
    """The ordinal pruning-step (or k) axis shared by the dynamics panels."""
    return alt.X(x, type="ordinal", title=title, axis=alt.Axis(labelAngle=0, labelOverlap=True))


def removal_strip(removals: pd.DataFrame, x: str, x_title: str) -> alt.Chart:
    """A thin strip over the steps ``x``, coloured by the intact network's phase of the layers removed at each
    step (rows: x, removed_phase, removed_now; a step without a removal is left blank)."""
    return alt.Chart(removals[removals["removed_phase"] != ""]).mark_rect().encode(
        x=_step_axis(x, None).axis(labels=False, ticks=False, title=None),
        color=alt.Color("removed_phase", type="nominal", title="layer removed (intact phase)",
                        scale=alt.Scale(domain=["Silent", "Decisive"],
                                        range=[SERIES_COLORS["silent"], SERIES_COLORS["decisive"]])),
        tooltip=[alt.Tooltip(x, type="ordinal", title=x_title), alt.Tooltip("removed_now", title="removed"),
                 alt.Tooltip("removed_phase", title="phase (intact network)")]).properties(height=14)


def dynamics_panels(groups: Sequence[tuple[str, pd.DataFrame, pd.DataFrame | None]], x: str, *, x_title: str,
                    tooltip: Sequence[str] = (), removals: pd.DataFrame | None = None,
                    height: int = 180) -> alt.VConcatChart:
    """Mean Decision Margin and accuracy of the readout of pruned networks: for each group (title, cells,
    transitions) two :func:`depth_heatmap` panels, all stacked in one column that follows the page width; the
    mean-DM panels share one colour domain so groups compare by eye. ``removals``: a :func:`removal_strip` on
    top. ``height``: pixels per panel."""
    margins = pd.concat([cells["mean_dm"] for _, cells, _ in groups]) if groups else pd.Series(dtype=float)
    dm_domain = (float(margins.min()), float(margins.max())) if margins.notna().any() else None
    panels = [] if removals is None else [removal_strip(removals, x, x_title)]
    for title, cells, transitions in groups:
        common = dict(x_title=x_title, tooltip=tooltip, transitions=transitions)
        panels.append(depth_heatmap(cells, x, "mean_dm", value_title="mean DM", domain=dm_domain, **common)
                      .properties(title=f"{title}: mean DM", height=height))
        panels.append(depth_heatmap(cells, x, "accuracy", value_title="accuracy", domain=(0, 1), **common)
                      .properties(title=f"{title}: accuracy", height=height))
    return alt.vconcat(*panels, spacing=8).resolve_scale(color="independent")


def reference_rules(levels: dict[str, float], y_title: str | None = None) -> alt.Chart:
    """Dashed horizontal rules at fixed levels (chance, a threshold), each with its meaning on hover.

    Args:
        levels: meaning -> level in the units of the chart's y axis.
        y_title: the y title of the chart this is layered on (keeps the shared axis title).
    """
    frame = pd.DataFrame({"meaning": list(levels), "level": [float(value) for value in levels.values()]})
    return (
        alt.Chart(frame)
        .mark_rule(strokeDash=[4, 4], color="black")
        .encode(y=alt.Y("level", type="quantitative", title=y_title),
                tooltip=[alt.Tooltip("meaning", type="nominal"), _numeric_tooltip("level")])
    )


def chance_rule(chance: float, y_title: str | None = None) -> alt.Chart:
    """The dashed chance line of an accuracy chart: accuracy of the best constant answer."""
    return reference_rules({"chance (best constant answer)": chance}, y_title)


def step_points(points: pd.DataFrame, x: str, y: str, tooltip: Sequence[str], *, label: str,
                y_title: str | None = None) -> alt.Chart:
    """Hollow black points that mark single steps of a curve (e.g. near-tie greedy choices), with ``tooltip``
    on hover and ``label`` as their legend-free meaning in the tooltip's first line."""
    frame = points.assign(meaning=label)
    return alt.Chart(frame).mark_point(shape="diamond", size=90, filled=False, color="black", strokeWidth=1.5).encode(
        x=alt.X(x, type="quantitative"),
        y=alt.Y(y, type="quantitative", title=alt.Undefined if y_title is None else y_title),  # None would hide it
        tooltip=[alt.Tooltip("meaning", type="nominal", title="marks")]
        + [alt.Tooltip(name, type="quantitative", format=".4g") if pd.api.types.is_float_dtype(frame[name])
           else alt.Tooltip(name) for name in tooltip])


def collapse_marker(markers: pd.DataFrame) -> alt.LayerChart:
    """Grey bar over the collapse point's interval and a rule at the point itself.

    Args:
        markers: one row per marked collapse with ``fraction_removed`` and its interval
            ``fraction_low``, ``fraction_high`` (fractions of layers), and ``step``,
            ``step_ci`` for the tooltip (``collapse.collapse_markers``).
    """
    if markers.empty:  # no collapse: typed empty columns, so that altair infers nothing from them
        markers = pd.DataFrame({name: pd.Series(dtype=float) for name in
                                ("fraction_removed", "fraction_low", "fraction_high", "step")}
                               | {"step_ci": pd.Series(dtype=str)})
    tooltip = [alt.Tooltip("step", type="quantitative", title="collapse step"),
               alt.Tooltip("step_ci", type="nominal", title="95% CI (steps)"),
               alt.Tooltip("fraction_removed", type="quantitative", format=".2f", title="fraction removed")]
    band = alt.Chart(markers).mark_rect(opacity=0.15, color="grey").encode(
        x=alt.X("fraction_low", type="quantitative"), x2=alt.X2("fraction_high"), tooltip=tooltip)
    rule = alt.Chart(markers).mark_rule(color="grey").encode(x=alt.X("fraction_removed", type="quantitative"),
                                                            tooltip=tooltip)
    return alt.layer(band, rule)
