"""Charts for the analytics page as inline SVG, drawn on the server: no script, no font or stylesheet from another
host, so the page works inside a hospital network and as a saved file. Every text is escaped."""

from __future__ import annotations

from markupsafe import Markup, escape

SERIES_COLOURS = {"issued": "#4c6ef5", "accepted": "#2b8a3e", "overridden": "#e8590c", "suppressed": "#868e96",
                  "silent": "#ae3ec9"}
FONT = "font-family:system-ui,sans-serif;font-size:11px"


def _svg(width: int, height: int, label: str, body: list[str]) -> Markup:
    return Markup(
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{escape(label)}" style="{FONT}"><title>{escape(label)}</title>'
        + "".join(body) + "</svg>"
    )


def weekly_bars(title: str, weeks: list[str], series: dict[str, list[int]], *, width: int = 560,
                height: int = 180) -> Markup:
    """Grouped bars, one group per ISO week, one bar per series (issued, accepted, overridden...)."""
    left, right, top, bottom = 34, 8, 22, 34
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max([1] + [v for values in series.values() for v in values])
    body = [f'<text x="{left}" y="14" font-weight="600">{escape(title)}</text>']
    for fraction in (0, 0.5, 1):
        y = top + plot_h * (1 - fraction)
        body.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#dee2e6"/>')
        body.append(f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end">{round(peak * fraction)}</text>')
    group = plot_w / max(1, len(weeks))
    bar = max(1.0, (group - 6) / max(1, len(series)))
    for i, week in enumerate(weeks):
        x0 = left + i * group + 3
        for j, (name, values) in enumerate(series.items()):
            value = values[i]
            h = plot_h * value / peak
            body.append(
                f'<rect class="bar bar-{escape(name)}" x="{x0 + j * bar:.1f}" y="{top + plot_h - h:.1f}" '
                f'width="{bar - 1:.1f}" height="{h:.1f}" fill="{SERIES_COLOURS.get(name, "#495057")}">'
                f"<title>{escape(week)}: {value} {escape(name)}</title></rect>"
            )
        if len(weeks) <= 16 or i % 2 == 0:
            body.append(f'<text x="{x0 + group / 2 - 3:.1f}" y="{height - bottom + 14}" text-anchor="middle">'
                        f"{escape(week[-3:])}</text>")
    x = left
    for name in series:
        body.append(f'<rect x="{x}" y="{height - 12}" width="9" height="9" fill="{SERIES_COLOURS.get(name, "#495057")}"/>'
                    f'<text x="{x + 12}" y="{height - 4}">{escape(name)}</text>')
        x += 14 + 7 * len(name) + 10
    return _svg(width, height, title, body)


def acceptance_bars(rows: list[tuple[str, float | None, int, int]], *, width: int = 560) -> Markup:
    """One horizontal bar per rule: (label, acceptance rate or None, accepted, issued)."""
    left, right, row_h, top = 150, 90, 22, 24
    height = top + row_h * max(1, len(rows)) + 8
    plot_w = width - left - right
    body = ['<text x="0" y="14" font-weight="600">Acceptance rate per rule (accepted / shown)</text>']
    for i, (label, rate, accepted, issued) in enumerate(rows):
        y = top + i * row_h
        body.append(f'<text x="{left - 6}" y="{y + 14}" text-anchor="end">{escape(label)}</text>')
        body.append(f'<rect x="{left}" y="{y + 3}" width="{plot_w}" height="{row_h - 8}" fill="#f1f3f5"/>')
        if rate is not None:
            body.append(f'<rect class="bar bar-rate" x="{left}" y="{y + 3}" width="{plot_w * rate:.1f}" '
                        f'height="{row_h - 8}" fill="{SERIES_COLOURS["accepted"]}"><title>{escape(label)}: '
                        f"{rate:.0%}</title></rect>")
        text = f"{rate:.0%} ({accepted}/{issued})" if rate is not None else "no cards shown"
        body.append(f'<text x="{left + plot_w + 6}" y="{y + 14}">{escape(text)}</text>')
    return _svg(width, height, "Acceptance rate per rule", body)
