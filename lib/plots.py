"""Altair helpers shared by the chapters: one theme, offline rendering, three chart kinds.

Chapters call ``use_site_theme()`` and ``enable_offline_rendering()`` once in their
setup cell, then build figures from tidy DataFrames with the helpers below, e.g.
``alt.layer(phase_shading(12, 32), line_with_band(df, "layer", "acc", "low", "high", "model"))``.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Sequence
from typing import Any

import altair as alt
import pandas as pd

__all__ = [
    "PALETTE",
    "PHASE_COLORS",
    "THEME_NAME",
    "OFFLINE_RENDERER",
    "use_site_theme",
    "enable_offline_rendering",
    "offline_html",
    "line_with_band",
    "phase_shading",
    "option_heatmap",
]

THEME_NAME = "layercollapse"
OFFLINE_RENDERER = "layercollapse-offline"

# Okabe-Ito, colour-blind safe; series (models, schedules) take colours in this order.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]
# Phases keep fixed colours everywhere (paler than any series, they sit behind lines).
PHASE_COLORS = {"Silent Phase": "#9A9A9A", "Decisive Phase": "#009E73"}


@alt.theme.register(THEME_NAME, enable=False)
def _site_theme() -> alt.theme.ThemeConfig:
    """The site's Altair theme: sizes, fonts and the category palette."""
    return {
        "config": {
            "view": {"continuousWidth": 600, "continuousHeight": 320, "stroke": None},
            "font": "Source Sans Pro, Helvetica, Arial, sans-serif",
            "axis": {"labelFontSize": 12, "titleFontSize": 13, "grid": True, "gridOpacity": 0.4},
            "legend": {"labelFontSize": 12, "titleFontSize": 13},
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


def offline_html(spec: dict[str, Any], embed_options: dict[str, Any] | None = None) -> str:
    """An HTML snippet that draws a Vega-Lite spec with no network, safe to repeat on one page.

    altair's own ``template="inline"`` output cannot appear twice on a page: its bundle
    and its ``const spec`` are top-level declarations, so the second chart throws
    "Identifier has already been declared". Here the bundle runs inside a function,
    only if ``window.vegaEmbed`` is not defined yet, and each chart's code is scoped.

    Args:
        spec: a Vega-Lite spec dict with its data inlined (``chart.to_dict()``).
        embed_options: options for vega-embed (``alt.renderers.set_embed_options``).

    Returns:
        HTML text (a ``div`` and two ``script`` elements; no ``src``, no link).
    """
    output_div = f"layercollapse-vis-{uuid.uuid4().hex}"
    embed_options = {"mode": "vega-lite", **(embed_options or {})}
    # "</" would end the script element if a data string contained "</script>".
    spec_json = json.dumps(spec).replace("</", "<\\/")
    options_json = json.dumps(embed_options).replace("</", "<\\/")
    return (
        f'<div class="vega-visualization" id="{output_div}"></div>\n'
        '<script type="text/javascript">\n'
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


def _offline_renderer(spec: dict[str, Any], **metadata: Any) -> dict[str, str]:
    """Renderer plugin: the ``text/html`` mimebundle of ``offline_html``."""
    return {"text/html": offline_html(spec, metadata.get("embed_options"))}


def enable_offline_rendering() -> None:
    """Make charts display with no internet: every chart's HTML carries the Vega JavaScript.

    Registers and enables the renderer ``OFFLINE_RENDERER``, whose ``text/html``
    output (what Jupyter and Quarto embed) inlines vega, vega-lite and vega-embed
    from ``vl-convert-python`` instead of loading them from a CDN. Each chart adds
    about 0.9 MB of HTML; the bundle is executed once per page. For a standalone
    file use ``chart.to_html(inline=True)`` (one chart per file).
    """
    alt.renderers.register(OFFLINE_RENDERER, _offline_renderer)
    alt.renderers.enable(OFFLINE_RENDERER)


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
) -> alt.LayerChart:
    """Line of ``y`` against ``x`` over a shaded confidence band [low, high], one series per ``color``.

    Args:
        df: tidy, one row per (series, x); columns named by the other arguments.
        x: quantitative column (layer index, pruning step, fraction removed).
        y, low, high: quantitative columns: estimate and interval bounds, same units.
        color: nominal column separating series (model, schedule), or None for one series.
        tooltip: extra columns shown on hover besides x, y and the interval; those
            missing from ``df`` are skipped, so the default suits any data.
        x_title, y_title: axis titles (default: the column names).
        points: draw a point at each x, which also makes hovering easy.

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
    encoding: dict[str, Any] = {"x": alt.X(x, type="quantitative", title=x_title or x)}
    if color:
        encoding["color"] = alt.Color(color, type="nominal")
    base = alt.Chart(df).encode(**encoding)
    band = base.mark_area(opacity=0.2).encode(
        y=alt.Y(low, type="quantitative", title=y_title or y), y2=alt.Y2(high)
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


def option_heatmap(df: pd.DataFrame, x: str, option: str, fraction: str, x_title: str | None = None) -> alt.Chart:
    """Option Frequency heatmap: share of items predicted as each option, per layer or step.

    Args:
        df: tidy, one row per (x, option).
        x: ordinal column (layer index or pruning step).
        option: nominal column (option letter A, B, C, ...).
        fraction: quantitative column in [0, 1], fraction of items predicted as that option.
        x_title: axis title (default: the column name).

    Returns:
        Chart of ``mark_rect`` with a [0, 1] sequential colour scale.
    """
    return (
        alt.Chart(df)
        .mark_rect()
        .encode(
            x=alt.X(x, type="ordinal", title=x_title or x),
            y=alt.Y(option, type="nominal", title="predicted option", sort="ascending"),
            color=alt.Color(
                fraction, type="quantitative", scale=alt.Scale(domain=[0, 1], scheme="blues"), title="fraction of items"
            ),
            tooltip=[alt.Tooltip(x, type="ordinal"), alt.Tooltip(option, type="nominal"), _numeric_tooltip(fraction)],
        )
    )
