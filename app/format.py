"""Episode state → panel HTML. Plain strings, no UI library, so it is unit-testable."""

from __future__ import annotations

import html
from typing import Iterable

from app.session import DONE, FAILED, PENDING, RETRYING, RUNNING, EpisodeView, HistoryRow
from policy.prompts import ACTIONS_PREFIX, PLAN_PREFIX

STATUS_ICON = {PENDING: "○", RUNNING: "◐", DONE: "✓", RETRYING: "↻", FAILED: "✗"}
_E = html.escape


def header_html(robot: str, policy: str, model: str, validator: str, extra: str = "") -> str:
    chips = [("robot", robot), ("policy", policy), ("model", model), ("validator", validator)]
    body = "".join(f'<span class="chip"><b>{_E(k)}</b> {_E(v)}</span>' for k, v in chips if v)
    return (
        '<div class="vh"><div class="vh-title">VLM2VLA <span>actions as language</span></div>'
        f'<div class="vh-chips">{body}{extra}</div></div>'
    )


def status_html(view: EpisodeView | None, busy_by_other: bool, is_driver: bool) -> str:
    if busy_by_other:
        return '<div class="st st-busy">robot busy — watching</div>'
    if view is None:
        return '<div class="st st-idle">Ready — type an instruction and press Run</div>'
    if not view.finished:
        who = "you are driving" if is_driver else "watching"
        wait = ""
        if view.awaiting == "execute":
            wait = " · waiting for you: execute, edit or regenerate"
        elif view.awaiting == "verdict":
            wait = " · waiting for your verdict"
        return f'<div class="st st-run">Running “{_E(view.instruction)}” · {view.elapsed_s:.1f} s · {who}{wait}</div>'
    cls, word = ("st-ok", "Success") if view.success else ("st-fail", "Not completed")
    return (
        f'<div class="st {cls}">{word}: {_E(view.reason or "")} · {view.duration_s:.1f} s · '
        f"{view.retries} retr{'y' if view.retries == 1 else 'ies'}</div>"
    )


def subtasks_html(view: EpisodeView | None) -> str:
    if view is None:
        return '<div class="empty">The subtask list appears here when an episode starts.</div>'
    if not view.subtasks:
        text = view.subtasks_text or "planning subtasks…"
        err = f'<div class="perr">✗ subtask list not understood: {_E(view.subtasks_error)}</div>' if view.subtasks_error else ""
        return f'<div class="sub-stream"><pre>{_E(text)}<span class="cursor">▍</span></pre>{err}</div>'
    rows = []
    for i, st in enumerate(view.subtasks):
        attempt = f'<span class="att">attempt {st.attempts}</span>' if st.attempts > 1 else ""
        rows.append(
            f'<li class="sub sub-{st.status}"><span class="ico">{STATUS_ICON.get(st.status, "?")}</span>'
            f'<span class="num">{i + 1}.</span> <span class="name">{_E(st.name)}</span>'
            f'<span class="badge">{st.status}</span>{attempt}</li>'
        )
    return f'<ol class="subs">{"".join(rows)}</ol>'


def stream_html(view: EpisodeView | None) -> str:
    """The current subtask's plan and action block (streaming), and any parse error."""
    if view is None or view.current < 0 or view.current >= len(view.subtasks):
        return '<div class="empty">The motion plan and action block stream here, token by token.</div>'
    st = view.subtasks[view.current]
    streaming = not view.finished and st.status == RUNNING and view.proposed is None
    cursor = '<span class="cursor">▍</span>' if streaming else ""
    plan_cursor = cursor if streaming and not st.actions else ""
    act_cursor = cursor if streaming and st.actions else ""
    err = f'<div class="perr">✗ not executed: {_E(st.error)}</div>' if st.error else ""
    plan = _strip_prefix(st.plan, PLAN_PREFIX)
    actions = _strip_prefix(st.actions, ACTIONS_PREFIX)
    return (
        f'<div class="cur">Subtask {view.current + 1}: <b>{_E(st.name)}</b></div>'
        f'<div class="lbl">Plan</div><div class="plan">{_E(plan)}{plan_cursor}</div>'
        f'<div class="lbl">Actions</div><pre class="actions" id="action-text">{_E(actions)}{act_cursor}</pre>{err}'
    )


def _strip_prefix(text: str, prefix: str) -> str:
    """`text` without its leading stage prefix (policy.prompts' PLAN_PREFIX / ACTIONS_PREFIX)."""
    t, p = text.lstrip(), prefix.strip()
    return t[len(p):].lstrip() if t.startswith(p) else text


def cm_short(v: Iterable[float]) -> str:
    return " ".join(f"{x * 100:+.1f}" for x in v)


def commands_html(view: EpisodeView | None, limit: int = 40) -> str:
    if view is None or not view.commands:
        return '<div class="empty">Executed commands (after the safety filter) are listed here.</div>'
    rows = []
    for c in view.commands[-limit:]:
        clamp = ""
        if c.clamps:
            clamp = f'<span class="clamp" title="{_E("; ".join(c.clamps))}">⚠ clamped: {_E(c.clamps[0])}</span>'
        grip = "open" if c.gripper >= 0.5 else "closed"
        rows.append(
            f'<tr class="{"clamped" if c.clamps else ""}"><td>{c.index + 1}.{c.step + 1}</td>'
            f"<td>{cm_short(c.executed)}</td><td>{cm_short(c.ee_pos)}</td><td>{grip}</td><td>{clamp}</td></tr>"
        )
    more = f'<div class="more">… {len(view.commands) - limit} earlier</div>' if len(view.commands) > limit else ""
    return (
        f'{more}<div class="cmds-wrap"><table class="cmds"><thead><tr><th>step</th><th>executed Δ (cm)</th><th>EE after (cm)</th><th>grip</th>'
        f'<th></th></tr></thead><tbody>{"".join(reversed(rows))}</tbody></table></div>'
    )


def validator_html(view: EpisodeView | None, manual: bool = False) -> str:
    parts = []
    if view is not None and view.awaiting == "verdict":
        parts.append('<div class="await">Manual validator: is the current subtask done? Use the buttons below.</div>')
    if view is None or not view.verdicts:
        if view is not None and view.validator_stream:
            parts.append(f'<div class="vstream">{_E(view.validator_stream)}<span class="cursor">▍</span></div>')
        elif not parts:
            note = " (manual: you give each verdict)" if manual else ""
            parts.append(f'<div class="empty">Verdicts appear here after each subtask{note}.</div>')
        return "".join(parts)
    for v in reversed(view.verdicts[-8:]):
        word, cls = ("proceed", "v-ok") if v.done else ("retry", "v-no")
        parts.append(
            f'<div class="verdict {cls}"><span class="vw">{word}</span> <b>{v.index + 1}. {_E(v.subtask)}</b>'
            f'<div class="vr">{_E(v.reason)}</div>'
            f'<div class="vm">{_E(v.validator)} validator · {_ms(v.latency_s)}</div></div>'
        )
    return "".join(parts)


def _ms(seconds: float) -> str:
    ms = seconds * 1000
    return "<1 ms" if ms < 1 else f"{ms:.0f} ms" if ms < 10_000 else f"{seconds:.1f} s"


def robot_state_html(ee_pos, gripper: float) -> str:
    """The gripper state and end-effector position as one HTML line (under the camera)."""
    grip = "open" if gripper >= 0.5 else "closed"
    return (
        f'<div class="rs"><span><b>gripper</b> {grip} ({gripper:.2f})</span>'
        f'<span><b>end effector</b> x {ee_pos[0]:.3f} · y {ee_pos[1]:.3f} · z {ee_pos[2]:.3f} m</span></div>'
    )


def history_rows(rows: list[HistoryRow]) -> list[list]:
    return [
        [r.number, r.instruction, "✓" if r.success else "✗", r.retries, round(r.duration_s, 1), r.reason]
        for r in rows
    ]


CSS = """
.vh,.vh *{color:#fff !important}
.vh{display:flex;align-items:center;justify-content:space-between;flex-wrap:wrap;gap:8px;
    padding:10px 16px;border-radius:12px;background:linear-gradient(90deg,#0f172a,#1e3a8a);color:#fff}
.vh-title{font-size:22px;font-weight:700;letter-spacing:.2px}
.vh-title span{font-weight:400;opacity:.75;font-size:15px;margin-left:6px}
.vh-chips{display:flex;gap:6px;flex-wrap:wrap}
.chip{background:rgba(255,255,255,.12);border:1px solid rgba(255,255,255,.25);border-radius:999px;
      padding:3px 10px;font-size:12.5px}
.chip b{opacity:.7;font-weight:500;margin-right:3px}
.st{padding:8px 12px;border-radius:8px;font-size:14px;font-weight:500}
.st-idle{background:#f1f5f9;color:#334155}.st-run{background:#eff6ff;color:#1d4ed8}
.st-ok{background:#f0fdf4;color:#15803d}.st-fail{background:#fef2f2;color:#b91c1c}
.st-busy{background:#fffbeb;color:#b45309}
.empty{color:#94a3b8;font-size:13px;padding:6px 2px}
ol.subs{list-style:none;padding:0;margin:0}
li.sub{display:flex;align-items:center;gap:6px;padding:5px 8px;border-radius:6px;margin:2px 0;font-size:14px}
li.sub .ico{width:16px;text-align:center}
li.sub .badge{margin-left:auto;font-size:11px;padding:1px 8px;border-radius:999px;background:#e2e8f0;color:#475569}
li.sub .att{font-size:11px;color:#b45309}
li.sub-running{background:#eff6ff}li.sub-running .badge{background:#2563eb;color:#fff}
li.sub-done .badge{background:#16a34a;color:#fff}li.sub-done .name{color:#15803d}
li.sub-retrying{background:#fffbeb}li.sub-retrying .badge{background:#f59e0b;color:#fff}
li.sub-failed{background:#fef2f2}li.sub-failed .badge{background:#dc2626;color:#fff}
li.sub-pending{color:#64748b}
.cur{font-size:14px;margin-bottom:6px}
.lbl{font-size:11px;text-transform:uppercase;letter-spacing:.6px;color:#64748b;margin-top:6px}
.plan{font-size:14px;font-style:italic;min-height:20px}
pre.actions,.sub-stream pre{white-space:pre-wrap;word-break:break-word;background:#0f172a;color:#e2e8f0;
    padding:8px 10px;border-radius:8px;font-size:13px;min-height:38px;margin:4px 0}
.cursor{animation:blink 1s steps(1) infinite;color:#60a5fa}
@keyframes blink{50%{opacity:0}}
.perr{color:#b91c1c;font-size:13px}
.cmds-wrap{max-height:250px;overflow-y:auto}
table.cmds{width:100%;font-size:12px;border-collapse:collapse}
table.cmds,table.cmds tr{border:none !important}
table.cmds td,table.cmds th{border:none !important;border-bottom:1px solid #f1f5f9 !important;padding:2px 6px !important;white-space:nowrap;background:transparent}
table.cmds th{text-align:left;color:#64748b;font-weight:500;border-bottom:1px solid #e2e8f0}
table.cmds td{padding:2px 4px;font-family:ui-monospace,monospace}
tr.clamped td{background:#fff7ed}.clamp{color:#c2410c;font-family:inherit}
.more{font-size:11px;color:#94a3b8}
.verdict{border-left:4px solid #cbd5e1;padding:4px 10px;margin:4px 0;border-radius:4px;background:#f8fafc}
.v-ok{border-color:#16a34a}.v-no{border-color:#f59e0b}
.vw{font-size:11px;font-weight:700;text-transform:uppercase;padding:1px 6px;border-radius:4px}
.v-ok .vw{background:#dcfce7;color:#15803d}.v-no .vw{background:#fef3c7;color:#b45309}
.vr{font-size:13px;color:#334155}.vm{font-size:11px;color:#94a3b8}
.await{background:#fef9c3;padding:6px 10px;border-radius:6px;font-size:13px}
.rs{display:flex;gap:16px;flex-wrap:wrap;font-size:13px;color:#334155;padding:2px 4px}
.rs b{color:#64748b;font-weight:500}
.cam{background:#0f172a;border-radius:12px;padding:8px;text-align:center}
.cam-label{color:#cbd5e1;font-size:12px;text-align:left;margin:0 0 6px 4px}
.cam-label:before{content:"●";color:#ef4444;margin-right:6px}
#camera-live{width:100%;max-width:340px;aspect-ratio:1/1;border-radius:8px;image-rendering:auto}
.vqa-note{background:#f1f5f9;border-radius:8px;padding:10px 14px;white-space:pre-wrap}
"""
