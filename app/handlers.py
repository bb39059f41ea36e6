"""What every button, timer and API endpoint of the page does — without the page.

`Handlers(rt)` holds one method per endpoint (`run`, `step`, `execute`, `edit`, `regenerate`,
`proceed`, `retry`, `stop`, `reset`, `camera`, `camera_image`, `panels`, `history`, `vqa`),
each taking the Gradio request last (only its `session_hash` is read), so a test drives
them as the page would, with no browser:

    h = Handlers(runtime)
    who = SimpleNamespace(session_hash="ann")
    for update in h.run("pick up the carrot", who):   # the panel values, streamed
        ...
    h.stop(who)

Each returns the panel values in `PANEL_OUTPUTS` order (unchanged ones as `gr.skip()`),
plus the message line where the endpoint has one. `app.ui` lays the page out and connects
these methods to its components; it holds no logic.
"""

from __future__ import annotations

import time
from typing import Any, Iterator

import gradio as gr

from app import format as fmt
from app.plot import trajectory_figure
from app.runtime import Runtime, UserError
from app.session import EpisodeView

PLOT_MIN_S = 1.0  # the 3D plot is redrawn at most once a second while an episode runs
STREAM_MIN_S = 1 / 30  # the driver's stream sends at most 30 updates a second
#: what `Panels.render` returns, in order (app.ui connects these names to components)
PANEL_OUTPUTS = ("status", "subtasks", "stream", "commands", "validator", "plot", "step_row", "verdict_row", "block")


def session_id(request: Any) -> str:
    """The browser tab's session (Gradio's session_hash); 'anonymous' for a request without one."""
    return (getattr(request, "session_hash", None) or "anonymous") if request is not None else "anonymous"


class Panels:
    """Renders the episode panels and remembers what each session was last sent (unchanged → gr.skip())."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.sent: dict[tuple[str, str], dict[str, Any]] = {}

    def forget(self, sid: str) -> None:
        for key in [k for k in self.sent if k[0] == sid]:
            self.sent.pop(key, None)

    def values(self, sid: str, view: EpisodeView | None) -> dict[str, Any]:
        """Every panel's value for `sid` now (the plot aside: `figure`)."""
        rt = self.rt
        busy = rt.lock.busy_for(sid)
        driver = rt.lock.held_by(sid) or (view is not None and view.driver == sid)
        waiting = view.awaiting if view is not None and not view.finished else None
        return {
            "status": fmt.status_html(view, busy, driver),
            "subtasks": fmt.subtasks_html(view),
            "stream": fmt.stream_html(view),
            "commands": fmt.commands_html(view),
            "validator": fmt.validator_html(view, rt.names.validator == "manual"),
            "step_row": waiting == "execute" and driver,
            "verdict_row": waiting == "verdict" and driver,
            "block": view.proposed.actions if (view is not None and waiting == "execute" and view.proposed) else None,
        }

    def render(self, sid: str, view: EpisodeView | None, force: bool = False, channel: str = "call") -> list[Any]:
        """The panel updates in PANEL_OUTPUTS order. `channel`: each of a session's update streams (its
        episode stream, its watch timer) keeps its own memory of what it sent, so a late reply on one
        never hides an update on the other."""
        values = self.values(sid, view)
        last = self.sent.setdefault((sid, channel), {})

        def changed(key: str) -> bool:
            if force or last.get(key) != values[key]:
                last[key] = values[key]
                return True
            return False

        out: list[Any] = [values[k] if changed(k) else gr.skip() for k in ("status", "subtasks", "stream", "commands", "validator")]
        # A 3D plot re-draw costs the browser a lot (software WebGL): only when the path changed, at most once a second.
        plot_sig = (id(self.rt.view), self.rt.seed, len(view.commands), len(view.subtasks)) if view else (None, self.rt.seed)
        if force or (last.get("plot") != plot_sig and time.monotonic() - last.get("plot_t", 0.0) >= PLOT_MIN_S):
            last["plot"], last["plot_t"] = plot_sig, time.monotonic()
            out.append(self.figure(view))
        else:
            out.append(gr.skip())
        out += [gr.update(visible=bool(values[k])) if changed(k) else gr.skip() for k in ("step_row", "verdict_row")]
        out.append(values["block"] if values["block"] is not None and changed("block") else gr.skip())
        return out

    def figure(self, view: EpisodeView | None):
        rt = self.rt
        ws = rt.robot.safety.config.workspace
        obs = rt.camera.obs
        current = tuple(float(x) for x in obs.ee_pos) if obs is not None else None
        if view is None:
            return trajectory_figure(workspace=ws, objects=rt.objects(), current=current)
        return trajectory_figure(
            view.path(), [(c.target, c.index, bool(c.clamps)) for c in view.commands],
            [s.name for s in view.subtasks], ws, rt.objects(), current,
        )


class Handlers:
    """One method per page endpoint; see the module docstring. Their docstrings are the API's descriptions."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.panels = Panels(rt)
        self._streaming: set[str] = set()  # sessions whose own episode stream is open

    def _reply(self, sid: str, message: str) -> list[Any]:
        return self.panels.render(sid, self.rt.snapshot(), force=True) + [message]

    # ------------------------------------------------------------------ streaming an episode
    def _stream(self, sid: str, until_waiting: bool) -> Iterator[list[Any]]:
        """The panels after each change of the episode, until it ends (or, `until_waiting`, waits to execute)."""
        self._streaming.add(sid)
        try:
            version, last = -1, 0.0
            while True:
                self.rt.wait_change(version, timeout=0.5)
                view = self.rt.view
                if view is None:
                    yield self.panels.render(sid, None, channel="stream") + [""]
                    return
                gap = STREAM_MIN_S - (time.monotonic() - last)
                if gap > 0:
                    time.sleep(gap)
                snap = view.snapshot()
                version, last = snap.version, time.monotonic()
                final = snap.finished or (until_waiting and snap.awaiting == "execute")
                # the last reply is complete, so an API client's result has every panel
                yield self.panels.render(sid, snap, channel="stream", force=final) + [f"**{snap.notice}**" if snap.notice else ""]
                if final:
                    return
        finally:
            self._streaming.discard(sid)

    def _start(self, instruction: str, request: Any, step_through: bool) -> Iterator[list[Any]]:
        sid = session_id(request)
        try:
            self.rt.start(instruction, sid, step_through=step_through)
        except UserError as e:
            yield self._reply(sid, f"**{e}**")
            return
        yield from self._stream(sid, until_waiting=step_through)

    def run(self, instruction: str, request: gr.Request):
        """Run an episode for `instruction`; streams the panels until it ends."""
        yield from self._start(instruction, request, False)

    def step(self, instruction: str, request: gr.Request):
        """Start a step-through episode: streams until the first block waits for execute/edit/regenerate."""
        yield from self._start(instruction, request, True)

    # ------------------------------------------------------------------ answering a waiting loop
    def _answer(self, action: str, text: str | None, request: Any) -> Iterator[list[Any]]:
        sid = session_id(request)
        view = self.rt.view
        before = view.version if view is not None else -1
        try:
            self.rt.respond(sid, action, text)
        except (UserError, ValueError) as e:
            yield self._reply(sid, f"**{e}**")
            return
        if view is not None:  # the loop's next event ends the wait it was in
            self.rt.wait_change(before, timeout=30.0)
        yield from self._stream(sid, until_waiting=True)

    def execute(self, request: gr.Request):
        """Step-through: execute the proposed block."""
        yield from self._answer("execute", None, request)

    def edit(self, block_text: str, request: gr.Request):
        """Step-through: execute an edited block (re-parsed and safety-filtered first)."""
        yield from self._answer("edit", block_text, request)

    def regenerate(self, request: gr.Request):
        """Step-through: ask the model for a new plan and block."""
        yield from self._answer("regenerate", None, request)

    def _verdict(self, done: bool, request: Any) -> list[Any]:
        sid = session_id(request)
        view = self.rt.view
        before = view.version if view is not None else -1
        try:
            self.rt.verdict(sid, done)
        except UserError as e:
            return self._reply(sid, f"**{e}**")
        if view is not None:
            self.rt.wait_change(before, timeout=5.0)
        return self._reply(sid, "")

    def proceed(self, request: gr.Request):
        """Manual validator: the subtask is done."""
        return self._verdict(True, request)

    def retry(self, request: gr.Request):
        """Manual validator: the subtask is not done."""
        return self._verdict(False, request)

    # ------------------------------------------------------------------ the arm and the scene
    def stop(self, request: gr.Request):
        """E-stop: the arm holds and the episode ends (anyone may press it)."""
        sid = session_id(request)
        return self._reply(sid, f"**{self.rt.stop(sid)}**")

    def reset(self, request: gr.Request):
        """Reset the scene with a new seed and home the arm."""
        sid = session_id(request)
        try:
            msg = f"new scene (seed {self.rt.reset(sid)})"
        except UserError as e:
            msg = f"**{e}**"
        return self._reply(sid, msg)

    # ------------------------------------------------------------------ what the page polls
    def robot_state_html(self) -> str:
        obs = self.rt.camera.obs
        if obs is None:
            return f'<div class="perr">{fmt._E(self.rt.camera.error or "no camera frame yet")}</div>'
        return fmt.robot_state_html(obs.ee_pos, obs.gripper)

    def camera(self):
        """The latest camera frame with the gripper state and end-effector position."""
        obs = self.rt.camera.obs
        return (obs.image if obs is not None else None), self.robot_state_html()

    def robot_state(self, request: gr.Request):
        html = self.robot_state_html()
        last = self.panels.sent.setdefault((session_id(request), "robot"), {})
        if last.get("html") == html:
            return gr.skip()
        last["html"] = html
        return html

    def panels_now(self, request: gr.Request):
        """The panels as they are now (watchers poll this; unchanged parts are skipped)."""
        sid = session_id(request)
        if sid in self._streaming:
            return [gr.skip()] * len(PANEL_OUTPUTS)
        return self.panels.render(sid, self.rt.snapshot(), channel="watch")

    def history(self):
        """Finished episodes (newest first) and their episode logs (zipped folders: episode.jsonl + frames)."""
        history = self.rt.history
        table = fmt.history_rows(history.rows)
        note = history.note()
        if note:  # once anything was dropped, the History tab says what it keeps (app.limits)
            table.append([None, note, "", None, None, ""])
        return table, history.offered() or None

    def camera_image(self):
        """The current camera image, for the VQA tab."""
        return self.rt.camera.obs.image if self.rt.camera.obs is not None else None

    # ------------------------------------------------------------------ VQA
    def vqa(self, image, question: str, adapter_off: bool, side_by_side: bool):
        """Ask the model about an image (the camera's when none is given); streams the answer(s)."""
        if image is None:
            image = self.camera_image()
        if image is None:
            raise gr.Error("no image: upload one or use the camera image")
        try:
            if side_by_side:
                a = b = ""
                for piece in self.rt.vqa(image, question, adapter=True):
                    a += piece
                    yield a, gr.update(value=b, visible=True)
                for piece in self.rt.vqa(image, question, adapter=False):
                    b += piece
                    yield a, gr.update(value=b, visible=True)
            else:
                a = ""
                for piece in self.rt.vqa(image, question, adapter=not adapter_off):
                    a += piece
                    yield a, gr.update(visible=False)
        except UserError as e:
            raise gr.Error(str(e), print_exception=False)

    def leave(self, request: gr.Request):
        """The tab closed: release what its session held."""
        sid = session_id(request)
        self.rt.release(sid)
        self.panels.forget(sid)
