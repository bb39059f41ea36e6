"""Plotly figures for the report, saved as HTML and as PNG (headless Chromium, no kaleido)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"  # Debian's, installed by .ci/setup.sh (the browser tests use it too)
_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def trials_figure(cells: list[Any], titles: dict[str, str]) -> Any:
    """Grouped bars: success % per row, one colour per policy, 95 % Wilson intervals as error bars."""
    import plotly.graph_objects as go

    fig = go.Figure()
    policies = list(dict.fromkeys(c.policy for c in cells))
    rows = list(dict.fromkeys(c.row for c in cells))
    for pol in policies:
        cs = {c.row: c for c in cells if c.policy == pol}
        xs = [titles.get(r, r) for r in rows if r in cs]
        ys = [100 * cs[r].rate for r in rows if r in cs]
        hi = [100 * (cs[r].interval[1] - cs[r].rate) for r in rows if r in cs]
        lo = [100 * (cs[r].rate - cs[r].interval[0]) for r in rows if r in cs]
        text = [f"{cs[r].successes}/{cs[r].n}" for r in rows if r in cs]
        fig.add_trace(go.Bar(
            name=pol, x=xs, y=ys, text=text, textposition="inside", insidetextanchor="start",
            error_y=dict(type="data", symmetric=False, array=hi, arrayminus=lo, thickness=1.5, width=6),
        ))
    fig.update_layout(
        title="Success rate by task (Fig. 5 rows), 95 % Wilson intervals",
        barmode="group", yaxis=dict(title="success (%)", range=[0, 105]), xaxis_title=None,
        legend_title="policy", showlegend=True, template="plotly_white", width=1000, height=520, font=dict(size=14),
    )
    return fig


def vqa_figure(data: dict[str, Any], retained: dict[str, dict[str, float | None]]) -> Any:
    """Bars: each tuned model's score per benchmark as % of the base model's (100 % = nothing forgotten)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    benches = list(data["scores"])
    for m in [m for m in data["models"] if m != data["base"]]:
        ys = [retained[b][m] for b in benches]
        fig.add_trace(go.Bar(name=m, x=benches, y=ys, text=[("—" if y is None else f"{y:.0f}%") for y in ys], textposition="outside"))
    fig.add_hline(y=100, line_dash="dash", line_color="grey", annotation_text=f"base model ({data['base']}) = 100 %", annotation_position="bottom right")
    top = max([y for r in retained.values() for y in r.values() if y is not None] + [100])
    fig.update_layout(
        title="VQA retained: score as % of the base model's", barmode="group",
        yaxis=dict(title="% of base", range=[0, top * 1.15]), legend_title="model", showlegend=True,
        template="plotly_white", width=1000, height=480, font=dict(size=14),
    )
    return fig


def save(figures: list[tuple[Any, Path]], png: bool = True) -> None:
    """Each figure as HTML (plotly.js written once beside it, so the pages work offline) and, with
    `png`, as a PNG of the same name, all rendered in one headless Chromium."""
    for fig, html in figures:
        html.parent.mkdir(parents=True, exist_ok=True)
        fig.write_html(html, include_plotlyjs="directory", full_html=True)
    if png and figures:
        pages = [(html, fig.layout.width or 1000, fig.layout.height or 500) for fig, html in figures]
        for (html, *_), data in zip(pages, render_pngs(pages)):
            html.with_suffix(".png").write_bytes(data)


def render_pngs(pages: list[tuple[Path, int, int]], scale: int = 2) -> list[bytes]:
    """Render saved plotly pages (path, width, height) to PNG in headless Chromium with
    Plotly.toImage: the figure alone at `scale`x, as kaleido would, without kaleido."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"{CHROMIUM} is missing: apt-get install chromium (make setup installs it as root); the HTML figures were written")
    out = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=_ARGS)
        try:
            page = browser.new_page()
            for html, width, height in pages:
                page.goto(Path(html).resolve().as_uri())
                page.wait_for_function("() => window.Plotly && document.querySelector('.plotly-graph-div')", timeout=90_000)
                url = page.evaluate(
                    "([w, h, s]) => Plotly.toImage(document.querySelector('.plotly-graph-div'), {format: 'png', width: w, height: h, scale: s})",
                    [width, height, scale],
                )
                out.append(base64.b64decode(url.split(",", 1)[1]))
        finally:
            browser.close()
    return out
