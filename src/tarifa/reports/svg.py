"""Charts rendered on the server as SVG (nothing loaded from outside): bars or lines, one
series per value of a column. Pure: takes points, returns markup (escaped)."""

from decimal import Decimal
from html import escape

COLOURS = ["#2563eb", "#16a34a", "#dc2626", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563"]
MAX_SERIES = len(COLOURS)
MAX_POINTS = 62


def _num(v) -> float:
    return float(v) if isinstance(v, (int, float, Decimal)) else 0.0  # drawing only: floats are fine here


def _short(v: float) -> str:
    a = abs(v)
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if a >= div:
            return f"{v / div:.1f}{suffix}"
    return f"{v:.0f}" if a >= 10 or v == int(v) else f"{v:.2f}"


def chart(points: list[tuple[str, str, object]], *, kind: str = "bar", width: int = 960, height: int = 260,
          title: str = "", small: bool = False) -> str:
    """points: (x label, series, value). The x labels keep their first-seen order."""
    xs: list[str] = []
    series: list[str] = []
    values: dict[tuple[str, str], float] = {}
    for x, s, v in points:
        x, s = str(x), str(s or "")
        if x not in xs:
            if len(xs) >= MAX_POINTS:
                continue
            xs.append(x)
        if s not in series:
            if len(series) >= MAX_SERIES:
                continue
            series.append(s)
        values[(x, s)] = values.get((x, s), 0.0) + _num(v)
    label = escape(title or "chart")
    if not xs:
        return (f'<svg class="chart" role="img" aria-label="{label}" viewBox="0 0 {width} {height // 3}" '
                f'width="{width}" height="{height // 3}"><text x="8" y="20" fill="#6b7280">No data</text></svg>')
    left, right, top = (4, 4, 4) if small else (48, 8, 8)
    bottom = 4 if small else (34 if len(series) > 1 else 20)
    pw, ph = width - left - right, height - top - bottom
    vmax = max([0.0, *values.values()]) or 1.0
    vmin = min([0.0, *values.values()])
    span = (vmax - vmin) or 1.0

    def y(v):
        return top + ph - (v - vmin) / span * ph

    aspect = ' preserveAspectRatio="none"' if small else ""
    out = [f'<svg class="chart" role="img" aria-label="{label}" viewBox="0 0 {width} {height}"{aspect} '
           f'width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">', f"<title>{label}</title>"]
    if not small:
        for frac in (0, 0.5, 1):
            v = vmin + span * frac
            out.append(f'<line x1="{left}" x2="{width - right}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#e5e7eb"/>')
            out.append(f'<text x="{left - 4}" y="{y(v) + 4:.1f}" text-anchor="end" font-size="10" '
                       f'fill="#6b7280">{escape(_short(v))}</text>')
    step = pw / len(xs)
    if kind == "line":
        for si, s in enumerate(series):
            pts = " ".join(f"{left + step * (i + 0.5):.1f},{y(values.get((x, s), 0.0)):.1f}" for i, x in enumerate(xs))
            out.append(f'<polyline fill="none" stroke="{COLOURS[si]}" stroke-width="2" points="{pts}">'
                       f"<title>{escape(s)}</title></polyline>")
            if len(xs) <= 31:
                for i, x in enumerate(xs):
                    if (x, s) in values:
                        out.append(f'<circle cx="{left + step * (i + 0.5):.1f}" cy="{y(values[(x, s)]):.1f}" r="2.5" '
                                   f'fill="{COLOURS[si]}"><title>{escape(x)} {escape(s)}: '
                                   f'{escape(_short(values[(x, s)]))}</title></circle>')
    else:
        bw = step * 0.8 / max(1, len(series))
        for i, x in enumerate(xs):
            for si, s in enumerate(series):
                v = values.get((x, s))
                if v is None:
                    continue
                x0 = left + step * i + step * 0.1 + bw * si
                y0, y1 = sorted((y(0.0), y(v)))
                out.append(f'<rect x="{x0:.1f}" y="{y0:.1f}" width="{max(bw - 1, 1):.1f}" height="{max(y1 - y0, 0.5):.1f}" '
                           f'fill="{COLOURS[si]}"><title>{escape(x)} {escape(s)}: {escape(_short(v))}</title></rect>')
    if not small:
        every = max(1, len(xs) // 8)
        for i, x in enumerate(xs):
            if i % every == 0:
                out.append(f'<text x="{left + step * (i + 0.5):.1f}" y="{top + ph + 13}" text-anchor="middle" '
                           f'font-size="10" fill="#374151">{escape(x[:14])}</text>')
        if len(series) > 1 or (series and series[0]):
            lx = left
            for si, s in enumerate(series):
                out.append(f'<rect x="{lx}" y="{height - 11}" width="9" height="9" fill="{COLOURS[si]}"/>'
                           f'<text x="{lx + 12}" y="{height - 3}" font-size="10" fill="#374151">{escape(s[:18])}</text>')
                lx += 24 + 6 * min(len(s), 18)
    out.append("</svg>")
    return "".join(out)


def report_chart(report, rows, **kw) -> str:
    c = report.chart
    if c is None:
        return ""
    points = [(r.get(c.x), r.get(c.series) if c.series else "", r.get(c.y)) for r in rows]
    if report.column(c.x).type == "date":
        points.sort(key=lambda p: str(p[0] or ""))
        points = [(p[0].isoformat() if p[0] else "", p[1], p[2]) for p in points]
    return chart(points, kind=c.kind, title=kw.pop("title", report.name), **kw)
