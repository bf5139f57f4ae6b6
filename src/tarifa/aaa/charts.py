"""Server-rendered SVG charts (nothing loaded from outside the page): a subscriber's traffic per day.
Pure: no ORM."""

import datetime as dt
from html import escape

from tarifa.kernel.units import format_bytes

WIDTH, HEIGHT, LEFT, BOTTOM, TOP = 640, 180, 64, 22, 8


def traffic_svg(days: list[tuple[dt.date, int, int]], *, title: str = "Traffic per day") -> str:
    """Bars per day: download (bytes out of the NAS, to the subscriber) and upload side by side.
    `days` in date order: (day, download bytes, upload bytes)."""
    if not days:
        return ""
    top = max(max(d, u) for _, d, u in days) or 1
    plot_w, plot_h = WIDTH - LEFT - 8, HEIGHT - BOTTOM - TOP
    slot = plot_w / len(days)
    bar = max(1.0, slot * 0.4)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" viewBox="0 0 {WIDTH} {HEIGHT}" '
             f'width="100%" style="max-width:{WIDTH}px" aria-label="{escape(title)}">',
             f"<title>{escape(title)}</title>"]
    for frac in (0, 0.5, 1):
        y = TOP + plot_h * (1 - frac)
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - 8}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>')
        parts.append(f'<text x="{LEFT - 4}" y="{y + 4:.1f}" font-size="10" text-anchor="end">'
                     f"{escape(format_bytes(int(top * frac)))}</text>")
    label_every = max(1, len(days) // 8)
    for i, (day, down, up) in enumerate(days):
        x = LEFT + i * slot + slot * 0.1
        for j, (value, colour, name) in enumerate(((down, "#2b6cb0", "download"), (up, "#9ac1e8", "upload"))):
            h = plot_h * value / top
            parts.append(f'<rect x="{x + j * bar:.1f}" y="{TOP + plot_h - h:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                         f'fill="{colour}"><title>{day:%Y-%m-%d} {name}: {escape(format_bytes(value))}</title></rect>')
        if i % label_every == 0:
            parts.append(f'<text x="{x + bar:.1f}" y="{HEIGHT - 6}" font-size="10" text-anchor="middle">'
                         f"{day:%m-%d}</text>")
    parts.append("</svg>")
    return "".join(parts)
