"""Line charts as inline SVG: no JavaScript and no chart library, so the page works on the
monitoring host with nothing but Python, and the same charts go into the quarterly report."""

from __future__ import annotations

import datetime as dt
from html import escape

COLOURS = ("#1b6ac9", "#d9480f", "#2b8a3e", "#862e9c", "#e67700", "#0b7285", "#c2255c", "#5c940d")


def _fmt(v: float, unit: str) -> str:
    if unit == "bytes":
        f: float
        for u, f in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
            if abs(v) >= f:
                return f"{v / f:.1f} {u}"
        return f"{v:.0f} B"
    if unit == "bits/s":
        for u, f in (("Gbit/s", 1e9), ("Mbit/s", 1e6), ("kbit/s", 1e3)):
            if abs(v) >= f:
                return f"{v / f:.1f} {u}"
        return f"{v:.0f} bit/s"
    if unit == "%":
        return f"{v:.0f}%"
    if unit == "s":
        return f"{v:.2f} s"
    return f"{v:g}"


def line_chart(
    title: str,
    series: list[tuple[str, list[tuple[float, float]]]],
    unit: str = "",
    ymin: float | None = 0,
    ymax: float | None = None,
    width: int = 720,
    height: int = 220,
) -> str:
    """One chart: a line per (label, [(t, v)]), time on x, a legend under it."""
    left, right, top, bottom = 70, 10, 28, 40
    pts = [p for _, s in series for p in s]
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" width="{width}" '
           f'height="{height + 18 * len(series)}" viewBox="0 0 {width} {height + 18 * len(series)}">',
           f'<title>{escape(title)}</title>',
           f'<text x="{left}" y="18" font-size="14" font-weight="bold">{escape(title)}</text>']  # fmt: skip
    if not pts:
        out.append(f'<text x="{left}" y="{height / 2}" font-size="13">tidak ada data / no data</text></svg>')
        return "".join(out)
    t0, t1 = min(p[0] for p in pts), max(p[0] for p in pts)
    lo = ymin if ymin is not None else min(p[1] for p in pts)
    hi = ymax if ymax is not None else max(p[1] for p in pts)
    hi = hi if hi > lo else lo + 1
    t1 = t1 if t1 > t0 else t0 + 1
    pw, ph = width - left - right, height - top - bottom

    def x(t: float) -> float:
        return left + (t - t0) / (t1 - t0) * pw

    def y(v: float) -> float:
        return top + ph - (min(max(v, lo), hi) - lo) / (hi - lo) * ph

    for i in range(5):
        v = lo + (hi - lo) * i / 4
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 6}" y="{y(v) + 4:.1f}" font-size="11" text-anchor="end">{_fmt(v, unit)}</text>')
    for i in range(5):
        t = t0 + (t1 - t0) * i / 4
        label = dt.datetime.fromtimestamp(t).astimezone().strftime("%d-%m %H:%M")
        out.append(
            f'<text x="{x(t):.1f}" y="{height - bottom + 16}" font-size="11" text-anchor="middle">{label}</text>'
        )
    for n, (label, s) in enumerate(series):
        colour = COLOURS[n % len(COLOURS)]
        if s:
            path = " ".join(f"{'M' if i == 0 else 'L'}{x(t):.1f},{y(v):.1f}" for i, (t, v) in enumerate(s))
            out.append(f'<path d="{path}" fill="none" stroke="{colour}" stroke-width="1.6"/>')
        ly = height + 18 * n + 4
        last = _fmt(s[-1][1], unit) if s else "-"
        out.append(f'<rect x="{left}" y="{ly}" width="12" height="10" fill="{colour}"/>')
        legend = f"{escape(label)} (terakhir / last: {last})"
        out.append(f'<text x="{left + 18}" y="{ly + 9}" font-size="12">{legend}</text>')
    out.append("</svg>")
    return "".join(out)
