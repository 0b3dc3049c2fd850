"""The site's charts: one theme, one palette, and the chart builders the chapters call (Altair).

Chapters call ``use_site_theme()`` and ``vega.enable_offline_rendering()`` once in their setup cell, then
build figures from tidy DataFrames with the helpers below, e.g.
``alt.layer(phase_shading(12, 32), line_with_band(df, "layer", "acc", "low", "high", "model"))``:
lines with bands, phase shading, heatmaps of the readout (option frequency, depth x step), reference rules,
step markers, collapse markers, dose-response panels and the phase diagram of collapse. How the charts reach a
page without a network (the Vega bundle, the offline renderer) is ``site.vega``'s job.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import altair as alt
import numpy as np
import pandas as pd

__all__ = [
    "PALETTE",
    "PHASE_COLORS",
    "THEME_NAME",
    "use_site_theme",
    "SERIES_COLORS",
    "series_color",
    "series_scale",
    "line_with_band",
    "phase_shading",
    "option_heatmap",
    "depth_heatmap",
    "removal_strip",
    "dynamics_panels",
    "reference_rules",
    "chance_rule",
    "step_points",
    "collapse_marker",
    "points_with_intervals",
    "dose_response_panels",
    "collapse_phase_diagram",
    "transition_accuracy_chart",
]

THEME_NAME = "layercollapse"

# Okabe-Ito, colour-blind safe; series (models, schedules) take colours in this order.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]
# Phases keep fixed colours everywhere (paler than any series, they sit behind lines).
PHASE_COLORS = {"Silent Phase": "#9A9A9A", "Decisive Phase": "#009E73"}
#: The two phases keep one colour on every page when they are series (phase pruning); pruning schedules keep the
#: colour of their record (``pruning.SCHEDULES``, by key and by the name the site shows: :func:`series_color`).
#: Other series (models, measures) take the PALETTE colours these leave free, in order.
SERIES_COLORS = {
    "silent": "#6E6E6E", "Silent Phase": "#6E6E6E", "Silent": "#6E6E6E",
    "decisive": PHASE_COLORS["Decisive Phase"], "Decisive Phase": PHASE_COLORS["Decisive Phase"],
    "Decisive": PHASE_COLORS["Decisive Phase"],
}


def series_color(value: str) -> str | None:
    """The fixed colour of a recurring series: a phase's (:data:`SERIES_COLORS`), or a registered pruning schedule's,
    by its key or by its label; None for any other series."""
    from layercollapse.pruning.schedules import SCHEDULES

    if value in SERIES_COLORS:
        return SERIES_COLORS[value]
    by_label = {schedule.label: schedule for schedule in SCHEDULES.values()}
    schedule = SCHEDULES.get(value) or by_label.get(value)
    return None if schedule is None else schedule.color


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


def series_scale(values: Sequence[Any]) -> alt.Scale:
    """Colour scale of a nominal series column: the fixed colours of :func:`series_color`, free PALETTE colours
    otherwise.

    Args:
        values: the series' values in legend order (e.g. ``df["schedule"].unique()``).
    """
    domain = list(dict.fromkeys(str(value) for value in values))
    fixed = {value: series_color(value) for value in domain}
    free = iter([color for color in PALETTE if color not in fixed.values()] + PALETTE)
    return alt.Scale(domain=domain, range=[fixed[value] or next(free) for value in domain])


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
        cells: tidy, one row per (x, depth) (``claims.pruned_transitions.dynamics_table`` / ``seed_mean_dynamics``).
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
    cells = cells[_drawn_columns(cells, (x, "depth", "mean_dm", "accuracy", *tooltip))]  # shared by both panels
    heat = alt.Chart(cells).mark_rect().encode(
        x=x_axis, y=y_axis, color=alt.Color(value, type="quantitative", scale=scale, title=value_title),
        tooltip=[*hover, _numeric_tooltip(value, value_title)])
    layers = [heat]
    if transitions is not None:
        found = transitions.dropna(subset=["transition_depth"]).rename(columns={"transition_depth": "depth"})
        found = found.astype({"depth": int})
        extra = [alt.Tooltip(column) for column in ("transition_layer", "share_kept", "n_seeds") if column in found]
        found = found[_drawn_columns(found, (x, "depth", "transition_layer", "share_kept", "n_seeds"))]
        layers.append(alt.Chart(found).mark_point(shape="circle", size=70, filled=False, color="black",
                                                  strokeWidth=1.5).encode(
            x=x_axis, y=y_axis, tooltip=[alt.Tooltip(x, type="ordinal", title=x_title),
                                         alt.Tooltip("depth", type="ordinal", title="transition depth"), *extra]))
    return alt.layer(*layers)


def _drawn_columns(frame: pd.DataFrame, wanted: Sequence[str]) -> list[str]:
    """The columns of ``frame`` a chart draws or hovers, in order and once: only they travel with the page."""
    return [column for column in dict.fromkeys(wanted) if column in frame.columns]


def _step_axis(x: str, title: str | None) -> alt.X:
    """The ordinal pruning-step (or k) axis shared by the dynamics panels."""
    return alt.X(x, type="ordinal", title=title, axis=alt.Axis(labelAngle=0, labelOverlap=True))


def removal_strip(removals: pd.DataFrame, x: str, x_title: str) -> alt.Chart:
    """A thin strip over the steps ``x``, coloured by the intact network's phase of the layers removed at each
    step (rows: x, removed_phase, removed_now; a step without a removal is left blank)."""
    shown = removals.loc[removals["removed_phase"] != "", [x, "removed_phase", "removed_now"]]
    return alt.Chart(shown).mark_rect().encode(
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


def _dodged(frame: pd.DataFrame, x: str, by: str, width: float = 0.25) -> pd.DataFrame:
    """``frame`` with ``{x}_at``: ``x`` moved left or right by series (``by``), so two series' marks at one x sit side
    by side."""
    levels = list(dict.fromkeys(frame[by]))
    offsets = {level: (index - (len(levels) - 1) / 2) * width for index, level in enumerate(levels)}
    return frame.assign(**{f"{x}_at": frame[x] + frame[by].map(offsets).astype("float64")})


def points_with_intervals(frame: pd.DataFrame, x: str, y: str, low: str | None, high: str | None, color: str, *,
                          x_title: str, y_title: str, tooltip: Sequence[str] = (), series: Sequence[Any] | None = None,
                          line: bool = False, shared: bool = False) -> alt.LayerChart:
    """One point per row (a seed's network, a share) at ``x`` dodged by ``color``, with a vertical rule over its
    interval [low, high] (none where ``low`` is None), and ``line``: the series' points joined. ``shared``: keep every
    column of ``frame`` (already cut to what a figure's panels draw), so that the panels of one figure drawing from
    it carry one copy of the data instead of one each."""
    drawn = [x, y, color, *(bound for bound in (low, high) if bound), *tooltip]
    used = list(dict.fromkeys([*frame.columns, *drawn] if shared else drawn))
    frame = _dodged(frame[used], x, color)  # only the columns drawn or hovered travel with the page
    domain = list(dict.fromkeys(frame[color])) if series is None else list(series)
    tooltips = ([alt.Tooltip(color, type="nominal"), alt.Tooltip(x, type="quantitative", title=x_title)]
                + [_numeric_tooltip(name) if pd.api.types.is_float_dtype(frame[name]) else alt.Tooltip(name)
                   for name in (y, *(bound for bound in (low, high) if bound), *tooltip)])
    base = alt.Chart(frame).encode(
        x=alt.X(f"{x}_at", type="quantitative", title=x_title, axis=alt.Axis(format="d", tickMinStep=1)),
        color=alt.Color(color, type="nominal", scale=series_scale(domain)), tooltip=tooltips)
    layers = [base.mark_point(filled=True, size=28, opacity=0.75).encode(y=alt.Y(y, type="quantitative",
                                                                                title=y_title))]
    if low and high:
        layers.insert(0, base.mark_rule(opacity=0.45).encode(y=alt.Y(low, type="quantitative", title=y_title),
                                                             y2=alt.Y2(high)))
    if line:
        layers.append(base.mark_line(opacity=0.6).encode(y=alt.Y(y, type="quantitative", title=y_title)))
    return alt.layer(*layers)


def dose_response_panels(networks: pd.DataFrame, shares: pd.DataFrame, chance: float,
                         width: int | None = None) -> alt.VConcatChart:
    """The dose-response of phase-targeted pruning, k layers removed inside one phase (x) for both phases (colour):
    the share of networks with a transition of their own (Clopper-Pearson interval), and per network (one point per
    seed, item-bootstrap interval) the transition's shift from where the intact one is expected by both locations
    (the first layer whose accuracy stays above chance; the steepest rise of mean DM), its height and the final
    accuracy (dashed: chance).

    Args:
        networks: ``claims.pruned_transitions.phase_networks`` rows (phase, k, seed, shift, height, final_accuracy, ...).
        shares: per (phase, k): share, share_low, share_high, n (networks).
    """
    series = list(dict.fromkeys(networks["phase"]))
    common = dict(color="phase", x_title="layers removed inside the phase (k)", series=series, shared=True)
    # every per-network panel draws from one frame with the union of their columns: one copy in the page
    networks = networks[_drawn_columns(networks, (
        "k", "phase", "seed", "has_transition", "shift", "shift_low", "shift_high", "transition_layer", "outcome",
        "rise_shift", "rise_shift_low", "rise_shift_high", "rise_layer", "outcome_rise", "height", "height_low",
        "height_high", "dm_height", "final_accuracy"))]
    found = networks[networks["has_transition"]]
    panels = [
        points_with_intervals(shares, "k", "share", "share_low", "share_high", y_title="share with a transition",
                              tooltip=("n",), line=True, **common).properties(title="Has a transition", height=130),
        points_with_intervals(found, "k", "shift", "shift_low", "shift_high", y_title="shift (layers)",
                              tooltip=("seed", "transition_layer", "outcome"), **common)
        .properties(title="Where it stays above chance: shift from the intact transition", height=130),
        points_with_intervals(found, "k", "rise_shift", "rise_shift_low", "rise_shift_high", y_title="shift (layers)",
                              tooltip=("seed", "rise_layer", "outcome_rise"), **common)
        .properties(title="Where it rises: shift of the steepest rise of mean DM", height=130),
        points_with_intervals(found, "k", "height", "height_low", "height_high", y_title="accuracy gained",
                              tooltip=("seed", "dm_height", "outcome"), **common)
        .properties(title="Height: accuracy gained across it", height=130),
        alt.layer(points_with_intervals(networks, "k", "final_accuracy", None, None, y_title="accuracy",
                                        tooltip=("seed", "outcome"), **common),
                  chance_rule(chance, "accuracy")).properties(title="Final accuracy", height=130),
    ]
    return alt.vconcat(*(panel if width is None else panel.properties(width=width) for panel in panels), spacing=10)


def collapse_phase_diagram(table: pd.DataFrame, jitter: float = 0.18) -> alt.Chart:
    """P1b's data: one mark per pruned network (trace step) at (Silent layers removed, Decisive layers removed),
    coloured by accuracy, shaped by design, outlined where it has collapsed; marks at one spot spread a little
    (a deterministic jitter of up to ``jitter`` layers) so each stays visible and hoverable.

    Args:
        table: ``claims.predictions.collapse_table`` rows.
    """
    spread = table.groupby(["n_silent", "n_decisive"]).cumcount().to_numpy()
    angle = spread * 2.39996  # the golden angle: successive marks at one spot fan out
    radius = jitter * np.sqrt(spread / max(1, spread.max()))
    frame = table.assign(x=table["n_silent"] + radius * np.cos(angle), y=table["n_decisive"] + radius * np.sin(angle),
                         state=np.where(table["collapsed"], "collapsed", "not collapsed"))
    frame = frame[["x", "y", "n_silent", "n_decisive", "accuracy", "design", "seed", "step", "state"]]

    def axis(counts: pd.Series, title: str) -> dict:
        # the data's whole numbers only: the fan of marks around 0 must not pull the scale to -1 or -2
        top = int(counts.max()) if len(counts) else 1
        return dict(title=title, scale=alt.Scale(domain=(-jitter - 0.1, top + jitter + 0.1), nice=False, zero=False),
                    axis=alt.Axis(values=list(range(0, top + 1)), format="d"))

    return alt.Chart(frame).mark_point(filled=True, size=42, opacity=0.85).encode(
        x=alt.X("x", type="quantitative", **axis(table["n_silent"], "Silent-Phase layers removed")),
        y=alt.Y("y", type="quantitative", **axis(table["n_decisive"], "Decisive-Phase layers removed")),
        color=alt.Color("accuracy", type="quantitative", scale=alt.Scale(scheme="viridis", domain=(0, 1))),
        shape=alt.Shape("design", type="nominal", title="design"),
        stroke=alt.Stroke("state", type="nominal", scale=alt.Scale(domain=["collapsed", "not collapsed"],
                                                                      range=["#D55E00", "transparent"]),
                          title="collapse", legend=alt.Legend(labelLimit=0, titleLimit=0)),
        tooltip=[alt.Tooltip("design", type="nominal"), alt.Tooltip("seed"), alt.Tooltip("step"),
                 alt.Tooltip("n_silent", title="Silent removed"), alt.Tooltip("n_decisive", title="Decisive removed"),
                 _numeric_tooltip("accuracy"), alt.Tooltip("state", type="nominal")])


def transition_accuracy_chart(networks: pd.DataFrame, curves: pd.DataFrame, jitter: float = 0.06) -> alt.LayerChart:
    """C5c's data: whether each phase-targeted network has a transition of its own (0 / 1, spread a little so marks
    stay apart) against its final accuracy, coloured by phase, shaped by k; over it the fitted probability of a
    transition per phase with its bootstrap band.

    Args:
        networks: ``claims.pruned_transitions.phase_networks`` rows with k >= 1 (phase, k, seed, has_transition,
            final_accuracy, transition_layer, outcome).
        curves: ``claims.mechanism.transition_curves`` rows (phase, final_accuracy, probability, low, high).
    """
    pruned = networks[networks["k"] >= 1]
    spread = pruned.groupby(["phase", "has_transition"]).cumcount().to_numpy()
    offset = jitter * ((spread * 0.618034) % 1 - 0.5)  # a deterministic spread within +-jitter/2
    marks = pruned.assign(transition=pruned["has_transition"].astype(float) + offset,
                          has=np.where(pruned["has_transition"], "yes", "no"))
    marks = marks[["phase", "k", "seed", "final_accuracy", "transition", "has", "transition_layer", "outcome"]]
    domain = list(dict.fromkeys([*curves["phase"], *marks["phase"]]))
    color = alt.Color("phase", type="nominal", scale=series_scale(domain), title="phase pruned")
    x = alt.X("final_accuracy", type="quantitative", title="final accuracy of the pruned network")
    y_title = "has a transition (points) / fitted probability (lines)"
    band = alt.Chart(curves).mark_area(opacity=0.18).encode(x=x, y=alt.Y("low", type="quantitative", title=y_title),
                                                            y2="high", color=color)
    line = alt.Chart(curves).mark_line().encode(x=x, y=alt.Y("probability", type="quantitative", title=y_title),
                                                color=color,
                                                tooltip=[alt.Tooltip("phase", type="nominal"),
                                                         _numeric_tooltip("final_accuracy"),
                                                         _numeric_tooltip("probability", "fitted probability"),
                                                         _numeric_tooltip("low", "band low"),
                                                         _numeric_tooltip("high", "band high")])
    points = alt.Chart(marks).mark_point(filled=True, size=34, opacity=0.7).encode(
        x=x, y=alt.Y("transition", type="quantitative", title=y_title, scale=alt.Scale(domain=(-0.1, 1.1))),
        color=color, shape=alt.Shape("k", type="ordinal", title="k"),
        tooltip=[alt.Tooltip("phase", type="nominal"), alt.Tooltip("k"), alt.Tooltip("seed"),
                 _numeric_tooltip("final_accuracy"), alt.Tooltip("has", type="nominal", title="has a transition"),
                 alt.Tooltip("transition_layer", title="transition layer"), alt.Tooltip("outcome", type="nominal")])
    return alt.layer(band, line, points)
