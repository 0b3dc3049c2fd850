"""Charts without a network: the Vega JavaScript bundle, the offline renderer, and reading specs back from pages.

Altair's default HTML loads Vega from a CDN, which an offline reader (and this project's CI) cannot reach. Here
the bundle comes from vl-convert (no network), is written once per site to ``assets/vega/`` (a Quarto resource)
and loaded by every chart page, or inlined into each chart where there is no site (JupyterLab):
:func:`enable_offline_rendering` registers the renderer that does this, :func:`vega_mode` says which.
"""

from __future__ import annotations

import functools
import json
import math
import os
import uuid
from pathlib import Path
from typing import Any

import altair as alt
from layercollapse import settings
from layercollapse.paths import project_root

__all__ = [
    "OFFLINE_RENDERER",
    "SITE_ASSETS_DIR",
    "VEGA_MODE_ENV",
    "enable_offline_rendering",
    "offline_html",
    "vega_mode",
    "vega_bundle_name",
    "write_vega_bundle",
    "site_bundle_src",
    "responsive_spec",
    "compact_spec",
    "specs_in_html",
    "marks_without_tooltip",
]

VEGA_MODE_ENV = settings.VEGA.name  # "site" or "inline": how charts get the Vega JavaScript (see vega_mode)
SITE_ASSETS_DIR = "assets/vega"  # the bundle's folder in the project, a Quarto resource
OFFLINE_RENDERER = "layercollapse-offline"
# Autosizing that keeps a chart, axes and legend included, inside the width of its page column.
_FIT_WIDTH = {"type": "fit-x", "contains": "padding"}
_SPEC_CALL = ".catch(console.error);\n})("  # offline_html passes the spec right after this


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
    mode = settings.vega_mode_override() or ("site" if settings.quarto_project_root() else "inline")
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
    spec = compact_spec(responsive_spec(spec))
    embed_options = {"mode": "vega-lite", **(embed_options or {})}
    # "</" would end the script element if a data string contained "</script>".
    spec_json = json.dumps(spec, separators=(",", ":")).replace("</", "<\\/")
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


#: Significant digits the data of a page's charts keep: what a reader can see or hover, at a fraction of the bytes.
DATA_DIGITS = 4


def compact_spec(spec: dict[str, Any], digits: int = DATA_DIGITS) -> dict[str, Any]:
    """The spec with every float of its inline data (``datasets``) rounded to ``digits`` significant digits: a
    chart's data is most of a page's weight, and no reader sees a fifth digit."""
    def rounded(value: Any) -> Any:
        if isinstance(value, float) and math.isfinite(value):
            return float(f"{value:.{digits}g}")
        if isinstance(value, dict):
            return {key: rounded(item) for key, item in value.items()}
        if isinstance(value, list):
            return [rounded(item) for item in value]
        return value

    if "datasets" not in spec:
        return spec
    return {**spec, "datasets": {name: rounded(rows) for name, rows in spec["datasets"].items()}}


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
    root = settings.quarto_project_root() or project_root()
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
