"""The 3D trajectory figure: executed end-effector path coloured by subtask, commanded
targets, the safety workspace box and (in sim) the objects. Plain plotly, no UI."""

from __future__ import annotations

from typing import Mapping, Sequence

import plotly.graph_objects as go

from robot.base import Workspace

PALETTE = ["#2563eb", "#f97316", "#16a34a", "#db2777", "#9333ea", "#0891b2", "#ca8a04", "#dc2626"]
Vec = tuple[float, float, float]


def subtask_color(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def _box_edges(ws: Workspace) -> tuple[list, list, list]:
    (x0, y0, z0), (x1, y1, z1) = ws.low, ws.high
    corners = [(x, y, z) for x in (x0, x1) for y in (y0, y1) for z in (z0, z1)]
    xs: list = []
    ys: list = []
    zs: list = []
    for i, a in enumerate(corners):
        for b in corners[i + 1 :]:
            if sum(p != q for p, q in zip(a, b)) == 1:  # an edge differs on one axis
                xs += [a[0], b[0], None]
                ys += [a[1], b[1], None]
                zs += [a[2], b[2], None]
    return xs, ys, zs


def trajectory_figure(
    path: Sequence[tuple[Vec, int]] = (),
    targets: Sequence[tuple[Vec, int, bool]] = (),
    subtasks: Sequence[str] = (),
    workspace: Workspace | None = None,
    objects: Mapping[str, Vec] | None = None,
    current: Vec | None = None,
    height: int = 460,
) -> go.Figure:
    """`path`: (ee position m, subtask index); `targets`: (commanded position, subtask index, clamped)."""
    fig = go.Figure()
    if workspace is not None:
        xs, ys, zs = _box_edges(workspace)
        fig.add_trace(
            go.Scatter3d(x=xs, y=ys, z=zs, mode="lines", line=dict(color="#94a3b8", width=2, dash="dash"),
                         name="workspace", hoverinfo="skip")
        )
    # One trace per subtask so the legend names them; consecutive segments share the
    # joining point so the path is continuous where the subtask changes.
    by_index: dict[int, list[Vec]] = {}
    prev: Vec | None = None
    for pos, idx in path:
        pts = by_index.setdefault(idx, [])
        if not pts and prev is not None:
            pts.append(prev)
        pts.append(pos)
        prev = pos
    for idx in sorted(by_index):
        pts = by_index[idx]
        name = f"{idx + 1}. {subtasks[idx]}" if 0 <= idx < len(subtasks) else f"subtask {idx + 1}"
        fig.add_trace(
            go.Scatter3d(
                x=[p[0] for p in pts], y=[p[1] for p in pts], z=[p[2] for p in pts],
                mode="lines+markers", name=name[:40],
                line=dict(color=subtask_color(idx), width=6), marker=dict(size=3, color=subtask_color(idx)),
            )
        )
    if targets:
        fig.add_trace(
            go.Scatter3d(
                x=[t[0][0] for t in targets], y=[t[0][1] for t in targets], z=[t[0][2] for t in targets],
                mode="markers", name="commanded targets",
                marker=dict(size=4, symbol=["x" if t[2] else "circle-open" for t in targets],
                            color=["#dc2626" if t[2] else subtask_color(t[1]) for t in targets]),
            )
        )
    if objects:
        names = list(objects)
        fig.add_trace(
            go.Scatter3d(
                x=[objects[n][0] for n in names], y=[objects[n][1] for n in names], z=[objects[n][2] for n in names],
                mode="markers+text", text=names, textposition="top center", name="objects",
                marker=dict(size=7, color="#64748b", symbol="diamond"), textfont=dict(size=11, color="#334155"),
            )
        )
    if current is not None:
        fig.add_trace(
            go.Scatter3d(x=[current[0]], y=[current[1]], z=[current[2]], mode="markers", name="gripper now",
                         marker=dict(size=8, color="#111827", symbol="circle"))
        )
    axis = dict(backgroundcolor="#f8fafc", gridcolor="#e2e8f0", zerolinecolor="#cbd5e1")
    scene = dict(
        xaxis=dict(title="x forward (m)", **axis),
        yaxis=dict(title="y left (m)", **axis),
        zaxis=dict(title="z up (m)", **axis),
        aspectmode="manual",
        aspectratio=dict(x=1.0, y=1.1, z=0.75),
        camera=dict(eye=dict(x=-1.25, y=-1.2, z=0.75), center=dict(x=0, y=0, z=-0.1)),
    )
    if workspace is not None:
        pad = 0.03
        scene["xaxis"]["range"] = [workspace.low[0] - pad, workspace.high[0] + pad]
        scene["yaxis"]["range"] = [workspace.low[1] - pad, workspace.high[1] + pad]
        scene["zaxis"]["range"] = [workspace.low[2] - pad, workspace.high[2] + pad]
    fig.update_layout(
        scene=scene, height=height, margin=dict(l=0, r=0, t=0, b=0), uirevision="keep",
        legend=dict(orientation="h", yanchor="top", y=-0.02, x=0.0, font=dict(size=10.5)),
        paper_bgcolor="rgba(0,0,0,0)",
    )
    return fig
