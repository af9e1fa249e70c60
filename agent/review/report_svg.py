"""Inline SVG charts for the HTML report, drawn by hand so the report needs nothing from the
network and no plotting library: line charts (optionally as steps, optionally log x and y) and
a histogram. Every text that reaches the SVG is escaped: labels come from the archive, whose
candidate names are written by an LLM or a mutator and are untrusted.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass

# Colour-blind-safe palette (Okabe & Ito, 2008), black first for "all" / the reference line.
PALETTE = ("#000000", "#e69f00", "#56b4e9", "#009e73", "#d55e00", "#0072b2", "#cc79a7", "#f0e442")
WIDTH, HEIGHT = 640, 300
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 64, 150, 30, 46  # right: the legend


@dataclass(frozen=True)
class Series:
    label: str
    points: tuple[tuple[float, float], ...]
    color: str
    dashed: bool = False


@dataclass(frozen=True)
class Axis:
    """Maps data values in [lo, hi] to pixels in [start, end] (log10 when `log`)."""

    lo: float
    hi: float
    start: float
    end: float
    log: bool = False
    marks: tuple[float, ...] = ()  # ticks to draw instead of computed ones (those within [lo, hi])

    def _t(self, v: float) -> float:
        return math.log10(v) if self.log else v

    def __call__(self, v: float) -> float:
        lo, hi = self._t(self.lo), self._t(self.hi)
        frac = 0.5 if hi == lo else (self._t(v) - lo) / (hi - lo)
        return self.start + frac * (self.end - self.start)

    def ticks(self, n: int = 5) -> list[float]:
        marks = [m for m in self.marks if self.lo <= m <= self.hi]
        if marks:
            return marks
        if self.log:
            first, last = math.floor(math.log10(self.lo)), math.ceil(math.log10(self.hi))
            decades = [10.0**e for e in range(first, last + 1)]
            inside = [d for d in decades if self.lo <= d <= self.hi]
            if len(inside) < 3:  # a short range: 1-2-5 steps, else there is a tick or none
                inside = [m * d for d in decades for m in (1, 2, 5) if self.lo <= m * d <= self.hi]
            if len(inside) < 2:  # within a factor of 2 or so: round linear steps
                inside = [t for t in nice_ticks(self.lo, self.hi, n) if t > 0]
            return inside if len(inside) >= 2 else [self.lo, self.hi]
        return nice_ticks(self.lo, self.hi, n)


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """Round tick values (1, 2 or 5 times a power of ten apart) covering [lo, hi]."""
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / max(n, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    count = int((hi - first) / step + 1e-9) + 1
    return [round(first + i * step, 12) for i in range(count)]


def _fmt(v: float) -> str:
    return f"{v:.3g}"


def _text(x: float, y: float, body: str, anchor: str = "middle", extra: str = "") -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="11"{extra}>'
        f"{html.escape(body)}</text>"
    )


_BOLD = ' font-weight="bold"'


def _frame(title: str, inner: str, width: int = WIDTH, height: int = HEIGHT) -> str:
    return (
        f'<svg viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" aria-label="{html.escape(title)}" font-family="sans-serif">'
        f"<title>{html.escape(title)}</title>"
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>'
        f"{_text(width / 2, 18, title, extra=_BOLD)}"
        f"{inner}</svg>"
    )


def _axes(x: Axis, y: Axis, x_label: str, y_label: str) -> str:
    parts = [
        f'<line x1="{x.start}" y1="{y.start}" x2="{x.end}" y2="{y.start}" stroke="#333"/>',
        f'<line x1="{x.start}" y1="{y.start}" x2="{x.start}" y2="{y.end}" stroke="#333"/>',
    ]
    for t in x.ticks():
        px = x(t)
        parts.append(
            f'<line x1="{px:.1f}" y1="{y.start}" x2="{px:.1f}" y2="{y.start + 4}" stroke="#333"/>'
        )
        parts.append(_text(px, y.start + 16, _fmt(t)))
    for t in y.ticks():
        py = y(t)
        parts.append(
            f'<line x1="{x.start}" y1="{py:.1f}" x2="{x.end}" y2="{py:.1f}" stroke="#e4e4e4"/>'
        )
        parts.append(_text(x.start - 6, py + 4, _fmt(t), anchor="end"))
    parts.append(_text((x.start + x.end) / 2, y.start + 34, x_label))
    mid = (y.start + y.end) / 2
    parts.append(_text(14, mid, y_label, extra=f' transform="rotate(-90 14 {mid:.1f})"'))
    return "".join(parts)


def _legend(series: Sequence[Series], left: float) -> str:
    parts = []
    for i, s in enumerate(series):
        y = MARGIN_TOP + 10 + 16 * i
        dash = ' stroke-dasharray="5 3"' if s.dashed else ""
        parts.append(
            f'<line x1="{left}" y1="{y}" x2="{left + 18}" y2="{y}" stroke="{s.color}" '
            f'stroke-width="2"{dash}/>'
        )
        parts.append(_text(left + 24, y + 4, s.label[:22], anchor="start"))
    return "".join(parts)


def _extent(values: Sequence[float], log: bool) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    if log:
        return lo / 1.1, hi * 1.1
    pad = (hi - lo) * 0.05 or abs(hi) * 0.05 or 1.0
    return lo - pad, hi + pad


def _path(points: Sequence[tuple[float, float]], x: Axis, y: Axis, step: bool) -> str:
    coords: list[tuple[float, float]] = []
    for i, (px, py) in enumerate(points):
        if step and i:
            coords.append((x(px), coords[-1][1]))  # hold the previous value until this x
        coords.append((x(px), y(py)))
    return "M" + " L".join(f"{a:.1f},{b:.1f}" for a, b in coords)


def line_chart(
    series: Sequence[Series],
    *,
    title: str,
    x_label: str,
    y_label: str,
    step: bool = False,
    log_y: bool = False,
    log_x: bool = False,
    x_ticks: Sequence[float] = (),
    dots: bool = False,
) -> str:
    """One SVG with a line per series (a single point is drawn as a dot; with `dots`, every point
    is). A log axis falls back to linear when a value on it is not positive; `x_ticks` replaces the
    computed x ticks (e.g. the widths 32, 64, ... of a log-x chart, whose decades give one or two)."""
    drawn = [s for s in series if s.points]
    if not drawn:
        raise ValueError(f"{title}: nothing to draw (the caller shows a note instead)")
    xs = [p[0] for s in drawn for p in s.points]
    ys = [p[1] for s in drawn for p in s.points]
    log_y = log_y and min(ys) > 0
    log_x = log_x and min(xs) > 0
    plot_right = WIDTH - MARGIN_RIGHT
    x = Axis(*_extent(xs, log_x), MARGIN_LEFT, plot_right, log=log_x, marks=tuple(x_ticks))
    y = Axis(*_extent(ys, log_y), HEIGHT - MARGIN_BOTTOM, MARGIN_TOP, log=log_y)
    x_label += " (log scale)" if log_x else ""
    parts = [_axes(x, y, x_label, y_label + (" (log scale)" if log_y else ""))]
    for s in drawn:
        dash = ' stroke-dasharray="5 3"' if s.dashed else ""
        parts.append(
            f'<path d="{_path(s.points, x, y, step)}" fill="none" stroke="{s.color}" '
            f'stroke-width="2"{dash}><title>{html.escape(s.label)}</title></path>'
        )
        for px, py in s.points if dots else s.points[-1:]:
            parts.append(f'<circle cx="{x(px):.1f}" cy="{y(py):.1f}" r="2.5" fill="{s.color}"/>')
    parts.append(_legend(drawn, plot_right + 12))
    return _frame(title, "".join(parts))


def histogram(
    values: Sequence[float],
    *,
    title: str,
    x_label: str,
    markers: Sequence[tuple[str, float]] = (),
    bins: int = 20,
) -> str:
    """Counts of `values` in equal-width bins, with labelled vertical markers (e.g. AdamW at 1.0)."""
    if not values:
        raise ValueError(f"{title}: no values (the caller shows a note instead)")
    lo = min([*values, *(m for _, m in markers)])
    hi = max([*values, *(m for _, m in markers)])
    width = (hi - lo) / bins or 1.0
    counts = [0] * bins
    for v in values:
        counts[min(int((v - lo) / width), bins - 1)] += 1
    x = Axis(lo, lo + width * bins, MARGIN_LEFT, WIDTH - MARGIN_RIGHT)
    y = Axis(0, max(counts) * 1.1, HEIGHT - MARGIN_BOTTOM, MARGIN_TOP)
    parts = [_axes(x, y, x_label, "candidates")]
    for i, n in enumerate(counts):
        if n:
            left, right, top = x(lo + i * width), x(lo + (i + 1) * width), y(n)
            parts.append(
                f'<rect x="{left:.1f}" y="{top:.1f}" width="{max(right - left - 1, 1):.1f}" '
                f'height="{y.start - top:.1f}" fill="#56b4e9"><title>{n} in '
                f"[{_fmt(lo + i * width)}, {_fmt(lo + (i + 1) * width)})</title></rect>"
            )
    for i, (label, value) in enumerate(markers):
        color = PALETTE[(i * 4) % len(PALETTE)]  # black, then vermillion: apart from the bars
        px = x(value)
        parts.append(
            f'<line x1="{px:.1f}" y1="{y.start}" x2="{px:.1f}" y2="{y.end}" stroke="{color}" '
            f'stroke-width="2" stroke-dasharray="4 3"/>'
        )
        parts.append(_text(px + 3, y.end + 12 + 13 * i, f"{label} {_fmt(value)}", anchor="start"))
    return _frame(title, "".join(parts))
