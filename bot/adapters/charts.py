"""Drawing a guard verdict's chart (``bot.domain.chart.VerdictChart``) as a PNG with matplotlib.

One panel per check, over the window: the check's values, its ``min``/``max`` bounds, its baseline,
the span while it settled (its ranges still saw the version before the change), the change and
rollback marks, and the ticks that failed. The size is fixed (``WIDTH_PX`` wide, ``HEADER_PX`` plus
``PANEL_PX`` per check high) so Slack shows every chart alike.

matplotlib is used through its object API on the Agg canvas only (no pyplot, no global figure
state), so a chart can be drawn in a worker thread; it is slow (tens to hundreds of ms), which is
why callers run ``render_png`` off the event loop.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from datetime import datetime
from typing import Final

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bot.domain.chart import CheckChart, Series, VerdictChart

WIDTH_PX: Final = 1000
HEADER_PX: Final = 70
PANEL_PX: Final = 240
DPI: Final = 100
MAX_PANELS: Final = 8
"""Checks drawn at most; a guard with more shows the first ones (the chart stays readable)."""

_VALUE = "#1f6feb"
_BOUND = "#cf222e"
_BASELINE = "#6e7781"
_SETTLE = "#d0d7de"
_CHANGE = "#8250df"
_ROLLBACK = "#bf8700"


def size_of(chart: VerdictChart) -> tuple[int, int]:
    """The PNG's (width, height) in pixels."""
    panels = max(1, min(len(chart.checks), MAX_PANELS))
    return WIDTH_PX, HEADER_PX + PANEL_PX * panels


def _plain(text: str) -> str:
    """Text drawn as written: matplotlib reads ``$...$`` as maths."""
    return text.replace("$", r"\$")


def render_png(chart: VerdictChart) -> bytes:
    """The chart as PNG bytes (``size_of(chart)`` pixels)."""
    width, height = size_of(chart)
    figure = Figure(figsize=(width / DPI, height / DPI), dpi=DPI)
    FigureCanvasAgg(figure)
    figure.suptitle(_plain(chart.title), x=0.01, y=1 - 12 / height, ha="left", va="top", fontsize=12)
    checks = chart.checks[:MAX_PANELS] or (CheckChart("no checks", Series()),)
    origin = chart.changed_at or chart.rollback_at or chart.start
    scale, unit = (60.0, "min") if (chart.end - chart.start).total_seconds() > 600 else (1.0, "s")

    def x(at: datetime | float) -> float:
        seconds = at if isinstance(at, float) else at.timestamp()
        return (seconds - origin.timestamp()) / scale

    top = 1 - HEADER_PX / height
    figure.subplots_adjust(left=0.08, right=0.98, top=top, bottom=48 / height, hspace=0.45)
    axes = figure.subplots(len(checks), 1, squeeze=False, sharex=True)
    for index, check in enumerate(checks):
        ax: Axes = axes[index][0]
        _panel(ax, chart, check, x)
        ax.set_xlim(x(chart.start), x(chart.end))
    axes[-1][0].set_xlabel(f"{unit} since the change" if chart.changed_at else unit)
    out = io.BytesIO()
    figure.savefig(out, format="png", dpi=DPI)
    return out.getvalue()


def _panel(
    ax: Axes, chart: VerdictChart, check: CheckChart, to_x: Callable[[datetime | float], float]
) -> None:
    ax.set_title(_plain(check.name), loc="left", fontsize=10)
    ax.grid(True, color="#eaeef2", linewidth=0.8)
    change = chart.changed_at or chart.rollback_at  # a post-rollback watch settles after the rollback
    if change is not None and check.settles_at is not None and check.settles_at > change:
        ax.axvspan(to_x(change), to_x(check.settles_at), color=_SETTLE, alpha=0.6, label="settling")
    if chart.changed_at is not None:
        ax.axvline(to_x(chart.changed_at), color=_CHANGE, linewidth=1.5, label="change")
    if chart.rollback_at is not None:
        ax.axvline(to_x(chart.rollback_at), color=_ROLLBACK, linewidth=1.5, linestyle="-.", label="rollback")
    points = [(to_x(t), v) for t, v in check.series.points if math.isfinite(v)]
    if points:
        ax.plot([p[0] for p in points], [p[1] for p in points], color=_VALUE, linewidth=1.6, label="value")
    if check.baseline is not None and check.baseline.points:
        base = [(to_x(t), v) for t, v in check.baseline.points if math.isfinite(v)]
        if len(base) == 1:
            ax.axhline(base[0][1], color=_BASELINE, linestyle="--", label=f"{check.baseline_label} baseline")
        elif base:
            ax.plot(
                [p[0] for p in base],
                [p[1] for p in base],
                color=_BASELINE,
                linestyle="--",
                label=f"{check.baseline_label} baseline",
            )
    if check.max is not None:
        ax.axhline(check.max, color=_BOUND, linestyle=":", linewidth=1.4, label="max")
    if check.min is not None:
        ax.axhline(check.min, color=_BOUND, linestyle=":", linewidth=1.4, label="min")
    for index, tick in enumerate(chart.failing_ticks):
        ax.axvline(
            to_x(tick), color=_BOUND, linewidth=0.9, alpha=0.7, label="failing tick" if index == 0 else None
        )
    if check.error:
        ax.text(0.5, 0.5, _plain(check.error[:120]), transform=ax.transAxes, ha="center", va="center")
    elif not points:
        ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", va="center", color=_BASELINE)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", fontsize=7, ncol=4, framealpha=0.8)
