"""Vega-Lite specs of the report's charts, rendered offline to inline SVG, and the
DVC plot templates made from the same specs.

One spec per kind of chart: curves (ROC, precision-recall, cumulative gains; a
dashed reference behind), calibration (points on a line), ordered bars (win rate
per band: the order given is the order drawn, so bands 1..10 and A..D never sort
as text), and diverging bars (what raised and what lowered scores). Every axis has
a title in words. :func:`to_svg` renders a spec with vl-convert (Vega in an
embedded engine, no browser, no network: the data is inline): about 0.15 s a
chart once the engine is warm, 1.5 s for the first. The SVG keeps its viewBox, so
the page scales it to its card (``max-width: 100%``).

:func:`dvc_band_template` is the band spec with DVC's anchors in place of the data
(`dvc plots show` fills them), and :func:`dvc_html_template` the page DVC writes
around its plots with Vega, Vega-Lite and vega-embed inlined from vl-convert's own
bundle: no ``{scripts}`` placeholder, so DVC adds no CDN script and the plots
render offline. :func:`write_dvc_files` writes both under ``.dvc/plots``.

>>> spec = line_spec("Demo", [Curve("Model", [0, 1], [0, 1])], "x", "y")
>>> [layer["mark"]["type"] for layer in spec["layer"]]
['line']
>>> spec["layer"][0]["encoding"]["x"]["title"]
'x'
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

SCHEMA = "https://vega.github.io/schema/vega-lite/v5.json"
#: The Vega-Lite of vl-convert that renders the specs and that DVC's page bundles:
#: v5, as DVC's own templates declare (a v6 bundle warns on each of them).
VL_VERSION = "5.21"
WIDTH, HEIGHT = 340, 260
COLOURS = {"Model": "#1f6feb", "BANT rule": "#cf222e"}
REFERENCE = "#8c959f"
RAISES, LOWERS = "#1a7f37", "#cf222e"
#: Points per drawn curve: enough for the eye, small enough for a light page.
MAX_CURVE_POINTS = 300
#: Where dvc.yaml's band plot finds its template, and .dvc/config its page.
DVC_BAND_TEMPLATE = "bands.json"
DVC_HTML_TEMPLATE = "offline.html"
#: The anchors DVC fills in a template (dvc_render.vega_templates).
DVC_DATA, DVC_X, DVC_Y = "<DVC_METRIC_DATA>", "<DVC_METRIC_X>", "<DVC_METRIC_Y>"
DVC_TITLE = "<DVC_METRIC_TITLE>"
DVC_X_LABEL, DVC_Y_LABEL = "<DVC_METRIC_X_LABEL>", "<DVC_METRIC_Y_LABEL>"


@dataclass(frozen=True)
class Curve:
    """One curve: its legend label, points, dashed when it is a reference."""

    label: str
    x: ArrayLike
    y: ArrayLike
    dashed: bool = False


def thin(x: np.ndarray, y: np.ndarray, max_points: int) -> tuple[np.ndarray, ...]:
    """At most about max_points points along the curve, evenly spaced by path length;
    the first and last points are kept.

    >>> xs, ys = thin(np.linspace(0, 1, 1001), np.linspace(0, 1, 1001), 10)
    >>> len(xs) <= 12, float(xs[0]), float(xs[-1])
    (True, 0.0, 1.0)
    """
    if len(x) <= max_points:
        return x, y
    travelled = np.r_[0.0, np.cumsum(np.hypot(np.diff(x), np.diff(y)))]
    step = travelled[-1] / max_points or 1.0
    bucket = np.floor(travelled / step)
    keep = np.r_[True, bucket[1:] != bucket[:-1]]
    keep[-1] = True
    return x[keep], y[keep]


def _points(curve: Curve) -> list[dict[str, Any]]:
    x, y = thin(
        np.asarray(curve.x, float), np.asarray(curve.y, float), MAX_CURVE_POINTS
    )
    return [
        {"x": round(float(a), 5), "y": round(float(b), 5), "series": curve.label}
        for a, b in zip(x, y, strict=True)
    ]


def _unit_axis(title: str) -> dict[str, Any]:
    return {"type": "quantitative", "title": title, "scale": {"domain": [0, 1]}}


def _base(title: str) -> dict[str, Any]:
    return {
        "$schema": SCHEMA,
        "title": title,
        "width": WIDTH,
        "height": HEIGHT,
        "config": {"legend": {"orient": "bottom"}, "view": {"stroke": "#d0d7de"}},
    }


def _curve_layer(
    curves: Sequence[Curve], x_title: str, y_title: str, points: bool = False
) -> dict[str, Any]:
    labels = [c.label for c in curves]
    colours = [
        REFERENCE if c.dashed else COLOURS.get(c.label, "#1f6feb") for c in curves
    ]
    return {
        "data": {"values": [p for c in curves for p in _points(c)]},
        "mark": {"type": "line", "point": points, "clip": True},
        "encoding": {
            "x": {"field": "x", **_unit_axis(x_title)},
            "y": {"field": "y", **_unit_axis(y_title)},
            "color": {
                "field": "series",
                "type": "nominal",
                "title": None,
                "scale": {"domain": labels, "range": colours},
            },
            # Same field as the colour: one legend shows colour and dash together.
            "strokeDash": {
                "field": "series",
                "type": "nominal",
                "title": None,
                "scale": {
                    "domain": labels,
                    "range": [[5, 4] if c.dashed else [1, 0] for c in curves],
                },
            },
        },
    }


def line_spec(
    title: str, curves: Sequence[Curve], x_title: str, y_title: str
) -> dict[str, Any]:
    """Curves on axes from 0 to 1 (every curve here is a share or a rate); one line
    per curve, references dashed and grey."""
    return _base(title) | {"layer": [_curve_layer(curves, x_title, y_title)]}


def calibration_spec(
    predicted: ArrayLike, observed: ArrayLike, x_title: str, y_title: str
) -> dict[str, Any]:
    """Mean predicted probability against observed win rate per bin, with the
    diagonal of perfect calibration dashed behind."""
    perfect = Curve("Perfect", [0, 1], [0, 1], dashed=True)
    model = Curve("Model", predicted, observed)
    layers = [
        _curve_layer([perfect, model], x_title, y_title),
        _curve_layer([model], x_title, y_title) | {"mark": {"type": "point"}},
    ]
    layers[1]["mark"] = {"type": "point", "filled": True, "size": 45}
    return _base("Calibration") | {"layer": layers}


def bar_spec(
    title: str,
    labels: Sequence[str],
    values: Sequence[float],
    colours: Sequence[str],
    texts: Sequence[str],
    x_title: str,
    y_title: str,
) -> dict[str, Any]:
    """Horizontal bars in the order given (top to bottom), each with its text."""
    rows = [
        {"label": lab, "value": float(v), "colour": c, "text": t, "rank": i}
        for i, (lab, v, c, t) in enumerate(
            zip(labels, values, colours, texts, strict=True)
        )
    ]
    y = {
        "field": "label",
        "type": "ordinal",
        "title": y_title,
        "sort": {"field": "rank", "order": "ascending"},
    }
    return _base(title) | {
        "height": {"step": 24},
        "data": {"values": rows},
        "encoding": {"y": y},
        "layer": [
            {
                "mark": {"type": "bar"},
                "encoding": {
                    "x": {"field": "value", "type": "quantitative", "title": x_title},
                    "color": {"field": "colour", "type": "nominal", "scale": None},
                },
            },
            {
                "mark": {"type": "text", "align": "left", "dx": 4},
                "encoding": {
                    "x": {"field": "value", "type": "quantitative"},
                    "text": {"field": "text"},
                },
            },
        ],
    }


def diverging_spec(
    title: str,
    labels: Sequence[str],
    raised: Sequence[float],
    lowered: Sequence[float],
    y_title: str,
) -> dict[str, Any]:
    """Per label a green bar to the right (the mean part of its contribution that
    raised scores) and a red one to the left (the part that lowered them), in the
    order given; labels longer than 28 characters are cut on the axis."""
    rows = [
        {"label": lab, "side": side, "value": float(v), "rank": i}
        for i, (lab, up, down) in enumerate(zip(labels, raised, lowered, strict=True))
        for side, v in (("lowered", down), ("raised", up))
    ]
    return _base(title) | {
        "height": {"step": 22},
        "data": {"values": rows},
        "mark": {"type": "bar"},
        "encoding": {
            "y": {
                "field": "label",
                "type": "ordinal",
                "title": y_title,
                "sort": {"field": "rank", "order": "ascending"},
                "axis": {"labelLimit": 170},
            },
            "x": {
                "field": "value",
                "type": "quantitative",
                "title": "mean contribution (log-odds): lowered ← → raised",
            },
            "color": {
                "field": "side",
                "type": "nominal",
                "title": None,
                "scale": {"domain": ["raised", "lowered"], "range": [RAISES, LOWERS]},
            },
        },
    }


def local_ids(svg: str, key: str) -> str:
    """The SVG with its element ids (clip paths) named after ``key``: vl-convert
    numbers them per process, and several charts share one page.

    >>> local_ids('<clipPath id="clip7"/><g clip-path="url(#clip7)"/>', "roc")
    '<clipPath id="roc-1"/><g clip-path="url(#roc-1)"/>'
    """
    for number, old in enumerate(dict.fromkeys(re.findall(r'id="([^"]+)"', svg)), 1):
        new = f"{key}-{number}"
        svg = svg.replace(f'id="{old}"', f'id="{new}"')
        svg = svg.replace(f"url(#{old})", f"url(#{new})")
        svg = svg.replace(f'href="#{old}"', f'href="#{new}"')
    return svg


def to_svg(spec: dict[str, Any], key: str = "chart") -> str:
    """A spec rendered by vl-convert to one SVG element (no XML prolog), its
    viewBox kept so that CSS can scale it, its ids local to ``key``."""
    import vl_convert

    svg: str = vl_convert.vegalite_to_svg(spec, vl_version=VL_VERSION)
    return local_ids(svg[svg.index("<svg") :], key)


# --- DVC --------------------------------------------------------------------------


def dvc_band_template() -> dict[str, Any]:
    """A DVC plot template of win rate per band, bands in numeric order (DVC reads a
    CSV's values as text, which sorts 1, 10, 2...)."""
    spec = bar_spec("", [], [], [], [], DVC_X_LABEL, DVC_Y_LABEL)
    number = f"toNumber(datum['{DVC_Y}'])"
    return spec | {
        "title": DVC_TITLE,
        "data": {"values": DVC_DATA},
        "transform": [
            {"calculate": number, "as": "rank"},
            {"calculate": f"'bin ' + datum['{DVC_Y}']", "as": "label"},
            {"calculate": f"datum['{DVC_X}']", "as": "value"},
            {"calculate": "format(datum.value, '.0%')", "as": "text"},
        ],
        "layer": [
            {
                "mark": {"type": "bar", "color": "#1f6feb"},
                "encoding": {
                    "x": {
                        "field": "value",
                        "type": "quantitative",
                        "title": DVC_X_LABEL,
                    }
                },
            },
            spec["layer"][1],
        ],
    }


def dvc_html_template() -> str:
    """The page of `dvc plots show` with Vega, Vega-Lite and vega-embed inlined."""
    import vl_convert

    # vl-convert's default snippet: the three libraries as window globals.
    snippet = (
        "window.vegaEmbed = vegaEmbed; window.vega = vega; window.vegaLite = vegaLite;"
    )
    bundle = vl_convert.javascript_bundle(snippet, VL_VERSION).replace(
        "</script", "<\\/script"
    )
    return (
        "<!DOCTYPE html>\n<html>\n<head>\n{refresh_tag}\n"
        '<meta charset="utf-8"><title>DVC Plot (offline)</title>\n'
        f"<script>\n{bundle}\n</script>\n"
        "<style>table{border-spacing:15px}</style>\n</head>\n"
        "<body>\n{plot_divs}\n</body>\n</html>\n"
    )


def write_dvc_files(folder: Path) -> list[Path]:
    """Write the band template and the offline page into DVC's template folder."""
    folder.mkdir(parents=True, exist_ok=True)
    band, page = folder / DVC_BAND_TEMPLATE, folder / DVC_HTML_TEMPLATE
    for path, text in (
        (band, json.dumps(dvc_band_template(), indent=2) + "\n"),
        (page, dvc_html_template()),
    ):
        # Written beside and renamed: `dvc plots show` never reads half a page.
        partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, path)
    return [band, page]
