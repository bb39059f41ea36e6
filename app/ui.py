"""The Gradio 6 page. All logic lives in Runtime / EpisodeView / format / plot; this file wires it.

Every action is a named API endpoint (api_name), so gradio_client can drive the demo:
run, step, execute, edit, regenerate, proceed, retry, stop, reset, camera, camera_image, panels, history, vqa
(listed in the README). The live picture is an MJPEG stream at /camera.mjpg.
"""

from __future__ import annotations

import time
from typing import Any

import gradio as gr
from fastapi import Request  # module level: FastAPI resolves the route's annotations here

from app import format as fmt
from app.plot import trajectory_figure
from app.runtime import NO_MODEL_MESSAGE, Runtime, UserError
from app.session import EpisodeView

FALLBACK_EXAMPLES = {
    "English": ["pick up the carrot", "put the carrot on the plate"],
    "Español": ["recoge la zanahoria"],
    "中文": ["把胡萝卜放进锅里"],
    "हिन्दी": ["गाजर उठाओ"],
}
PLOT_MIN_S = 1.0  # the 3D plot is redrawn at most once a second while an episode runs
STREAM_MIN_S = 1 / 30  # the driver's stream sends at most 30 updates a second


def example_instructions() -> list[list[str]]:
    """[[instruction, language], ...] from the simulator's templates in assets/instructions.json."""
    try:
        from robot.sim.instructions import examples

        return [[text, lang] for text, lang in examples()]
    except (ImportError, OSError, KeyError, ValueError):
        return [[s, lang] for lang, v in FALLBACK_EXAMPLES.items() for s in v]


def _sid(request: gr.Request | None) -> str:
    return (getattr(request, "session_hash", None) or "anonymous") if request is not None else "anonymous"


class Panels:
    """Renders the episode panels and remembers what each session was last sent (unchanged → gr.skip())."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.sent: dict[str, dict[str, Any]] = {}

    def forget(self, sid: str) -> None:
        for key in [k for k in self.sent if k[0] == sid]:
            self.sent.pop(key, None)

    def render(self, sid: str, view: EpisodeView | None, force: bool = False, channel: str = "call") -> list[Any]:
        """`channel`: each of a session's update streams (its episode stream, its watch timer) keeps
        its own memory of what it sent, so a late reply on one never hides an update on the other."""
        rt = self.rt
        busy = rt.lock.busy_for(sid)
        driver = rt.lock.held_by(sid) or (view is not None and view.driver == sid)
        manual = rt.loaded.validator == "manual"
        plot_sig = (id(rt.view), rt.seed, len(view.commands), len(view.subtasks)) if view else (None, rt.seed)
        waiting = view.awaiting if view is not None and not view.finished else None
        block = view.proposed.actions if (view is not None and waiting == "execute" and view.proposed) else None
        values = {
            "status": fmt.status_html(view, busy, driver),
            "subtasks": fmt.subtasks_html(view),
            "stream": fmt.stream_html(view),
            "commands": fmt.commands_html(view),
            "validator": fmt.validator_html(view, manual),
            "step_row": waiting == "execute" and driver,
            "verdict_row": waiting == "verdict" and driver,
            "block": block,
        }
        last = self.sent.setdefault((sid, channel), {})
        out: list[Any] = []
        for key in ("status", "subtasks", "stream", "commands", "validator"):
            if force or last.get(key) != values[key]:
                last[key] = values[key]
                out.append(values[key])
            else:
                out.append(gr.skip())
        # the plot only when the path changes (re-drawing a 3D plot is the expensive part)
        # A 3D plot re-draw costs the browser a lot (software WebGL), so at most one a second.
        if force or (last.get("plot") != plot_sig and time.monotonic() - last.get("plot_t", 0.0) >= PLOT_MIN_S):
            last["plot"], last["plot_t"] = plot_sig, time.monotonic()
            out.append(self.figure(view))
        else:
            out.append(gr.skip())
        for key in ("step_row", "verdict_row"):
            if force or last.get(key) != values[key]:
                last[key] = values[key]
                out.append(gr.update(visible=bool(values[key])))
            else:
                out.append(gr.skip())
        if block is not None and (force or last.get("block") != block):
            last["block"] = block
            out.append(block)
        else:
            out.append(gr.skip())
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


def build(rt: Runtime) -> gr.Blocks:
    panels = Panels(rt)
    loaded = rt.loaded
    examples = example_instructions()

    with gr.Blocks(title="VLM2VLA — actions as language") as demo:
        gr.HTML(fmt.header_html(loaded.robot, loaded.policy, loaded.model, loaded.validator), elem_id="header")
        status = gr.HTML(fmt.status_html(None, False, False), elem_id="status")
        with gr.Tabs():
            with gr.Tab("Robot", id="robot"):
                with gr.Row(equal_height=False):
                    with gr.Column(scale=4, min_width=320):
                        gr.HTML(LIVE_CAMERA_HTML, elem_id="camera")
                        camera = gr.Image(format="jpeg", visible=False, interactive=False)  # for /camera API clients
                        robot_state_box = gr.HTML(elem_id="robot-state")
                        instruction = gr.Textbox(label="Instruction", placeholder="pick up the carrot", lines=1,
                                                 max_lines=2, elem_id="instruction")
                        with gr.Row():
                            run_btn = gr.Button("▶ Run", variant="primary", elem_id="run", min_width=90)
                            step_btn = gr.Button("⏯ Step", elem_id="step", min_width=90)
                        with gr.Row():
                            stop_btn = gr.Button("■ Stop", variant="stop", elem_id="stop", min_width=90)
                            reset_btn = gr.Button("↺ Reset scene", elem_id="reset", min_width=90)
                        gr.Examples(examples=[[s] for s, _ in examples], inputs=[instruction],
                                    label="Examples — English · Español · 中文 · हिन्दी", examples_per_page=12)
                    with gr.Column(scale=5, min_width=360):
                        gr.Markdown("#### Subtasks")
                        subtasks = gr.HTML(fmt.subtasks_html(None), elem_id="subtasks")
                        gr.Markdown("#### Plan → actions")
                        stream = gr.HTML(fmt.stream_html(None), elem_id="stream")
                        with gr.Row(visible=False, elem_id="step-controls") as step_row:
                            with gr.Column():
                                block = gr.Textbox(label="Action block (edit, then Apply edit — re-parsed and safety-filtered)",
                                                   lines=2, elem_id="block")
                                with gr.Row():
                                    exec_btn = gr.Button("Execute", variant="primary", elem_id="execute")
                                    edit_btn = gr.Button("Apply edit", elem_id="edit")
                                    regen_btn = gr.Button("Regenerate", elem_id="regenerate")
                        with gr.Row(visible=False, elem_id="verdict-controls") as verdict_row:
                            proceed_btn = gr.Button("✓ Done — proceed", variant="primary", elem_id="proceed")
                            retry_btn = gr.Button("↻ Not done — retry", elem_id="retry")
                        gr.Markdown("#### Validator")
                        validator = gr.HTML(fmt.validator_html(None, loaded.validator == "manual"), elem_id="validator")
                    with gr.Column(scale=6, min_width=400):
                        plot = gr.Plot(label="End-effector path by subtask · commanded targets · workspace · objects",
                                       elem_id="plot")
                        gr.Markdown("#### Executed commands")
                        commands = gr.HTML(fmt.commands_html(None), elem_id="commands")
            with gr.Tab("Ask the model (VQA)", id="vqa"):
                if not rt.has_model:
                    gr.HTML(f'<div class="vqa-note">{fmt._E(NO_MODEL_MESSAGE)}</div>', elem_id="vqa-note")
                with gr.Row():
                    with gr.Column(scale=1):
                        vqa_image = gr.Image(label="Image (the current camera view, or upload one)", sources=["upload", "clipboard"],
                                             type="numpy", height=300, elem_id="vqa-image")
                        use_cam = gr.Button("Use the current camera image", elem_id="use-camera")
                    with gr.Column(scale=1):
                        question = gr.Textbox(label="Question", placeholder="What objects are on the table?", elem_id="question")
                        with gr.Row():
                            adapter_off = gr.Checkbox(label="Adapter off (answer as the base model)", value=False)
                            side_by_side = gr.Checkbox(label="Side by side: with and without the adapter", value=False)
                        ask_btn = gr.Button("Ask", variant="primary", elem_id="ask", interactive=rt.has_model)
                        with gr.Row():
                            answer = gr.Textbox(label="Answer", lines=6, elem_id="answer", interactive=False)
                            answer_base = gr.Textbox(label="Base model (adapter off)", lines=6, visible=False,
                                                     elem_id="answer-base", interactive=False)
            with gr.Tab("History", id="history"):
                history_table = gr.Dataframe(headers=["#", "instruction", "success", "retries", "time (s)", "result"],
                                             datatype=["number", "str", "str", "number", "number", "str"],
                                             interactive=False, elem_id="history")
                history_files = gr.File(label="Episode logs (JSON, every event)", file_count="multiple", interactive=False,
                                        elem_id="history-files")
                refresh_hist = gr.Button("Refresh", size="sm")
        message = gr.Markdown(elem_id="message")

        panel_outputs = [status, subtasks, stream, commands, validator, plot, step_row, verdict_row, block]

        # ---------------------------------------------------------------- handlers
        streaming: set[str] = set()  # sessions whose own episode stream is open

        def stream_panels(sid: str, until_waiting: bool):
            streaming.add(sid)
            try:
                yield from _stream_panels(sid, until_waiting)
            finally:
                streaming.discard(sid)

        def _stream_panels(sid: str, until_waiting: bool):
            import time as _t

            version = -1
            last = 0.0
            while True:
                rt.wait_change(version, timeout=0.5)
                view = rt.view
                if view is None:
                    yield panels.render(sid, None, channel="stream") + [""]
                    return
                gap = STREAM_MIN_S - (_t.monotonic() - last)
                if gap > 0:
                    _t.sleep(gap)
                snap = view.snapshot()
                version = snap.version
                last = _t.monotonic()
                final = snap.finished or (until_waiting and snap.awaiting == "execute")
                # the last reply is complete, so an API client's result has every panel
                yield panels.render(sid, snap, channel="stream", force=final) + [""]
                if final:
                    return

        def _start(instruction: str, request: gr.Request, step_through: bool):
            sid = _sid(request)
            try:
                rt.start(instruction, sid, step_through=step_through)
            except UserError as e:
                yield panels.render(sid, rt.snapshot(), force=True) + [f"**{e}**"]
                return
            yield from stream_panels(sid, until_waiting=step_through)

        def run(instruction: str, request: gr.Request):
            """Run an episode for `instruction`; streams the panels until it ends."""
            yield from _start(instruction, request, False)

        def step(instruction: str, request: gr.Request):
            """Start a step-through episode: streams until the first block waits for execute/edit/regenerate."""
            yield from _start(instruction, request, True)

        def answer_loop(action: str, text: str | None, request: gr.Request):
            sid = _sid(request)
            view = rt.view
            before = view.version if view is not None else -1
            try:
                rt.respond(sid, action, text)
            except (UserError, ValueError) as e:
                yield panels.render(sid, rt.snapshot(), force=True) + [f"**{e}**"]
                return
            if view is not None:  # the loop's next event ends the wait it was in
                rt.wait_change(before, timeout=30.0)
            yield from stream_panels(sid, until_waiting=True)

        def execute(request: gr.Request):
            """Step-through: execute the proposed block."""
            yield from answer_loop("execute", None, request)

        def edit(block_text: str, request: gr.Request):
            """Step-through: execute an edited block (re-parsed and safety-filtered first)."""
            yield from answer_loop("edit", block_text, request)

        def regenerate(request: gr.Request):
            """Step-through: ask the model for a new plan and block."""
            yield from answer_loop("regenerate", None, request)

        def verdict(done: bool, request: gr.Request):
            sid = _sid(request)
            view = rt.view
            before = view.version if view is not None else -1
            try:
                rt.verdict(sid, done)
            except UserError as e:
                return panels.render(sid, rt.snapshot(), force=True) + [f"**{e}**"]
            if view is not None:
                rt.wait_change(before, timeout=5.0)
            return panels.render(sid, rt.snapshot(), force=True) + [""]

        def proceed(request: gr.Request):
            """Manual validator: the subtask is done."""
            return verdict(True, request)

        def retry(request: gr.Request):
            """Manual validator: the subtask is not done."""
            return verdict(False, request)

        def stop(request: gr.Request):
            """E-stop: the arm holds and the episode ends (anyone may press it)."""
            sid = _sid(request)
            msg = rt.stop(sid)
            return panels.render(sid, rt.snapshot(), force=True) + [f"**{msg}**"]

        def reset(request: gr.Request):
            """Reset the scene with a new seed and home the arm."""
            sid = _sid(request)
            try:
                seed = rt.reset(sid)
                msg = f"new scene (seed {seed})"
            except UserError as e:
                msg = f"**{e}**"
            return panels.render(sid, rt.snapshot(), force=True) + [msg]

        def robot_state_html() -> str:
            obs = rt.camera.obs
            if obs is None:
                return f'<div class="perr">{fmt._E(rt.camera.error or "no camera frame yet")}</div>'
            return fmt.robot_state_md(obs.ee_pos, obs.gripper)

        def camera_frame():
            """The latest camera frame with the gripper state and end-effector position."""
            obs = rt.camera.obs
            return (obs.image if obs is not None else None), robot_state_html()

        def robot_state(request: gr.Request):
            sid = _sid(request)
            html = robot_state_html()
            last = panels.sent.setdefault((sid, "robot"), {})
            if last.get("html") == html:
                return gr.skip()
            last["html"] = html
            return html

        def refresh(request: gr.Request):
            """The panels as they are now (watchers poll this; unchanged parts are skipped)."""
            sid = _sid(request)
            if sid in streaming:
                return [gr.skip()] * len(panel_outputs)
            return panels.render(sid, rt.snapshot(), channel="watch")

        def vqa(image, question: str, adapter_off: bool, side_by_side: bool):
            """Ask the model about an image (the camera's when none is given); streams the answer(s)."""
            if image is None:
                image = rt.camera.obs.image if rt.camera.obs is not None else None
            if image is None:
                raise gr.Error("no image: upload one or use the camera image")
            try:
                if side_by_side:
                    a = b = ""
                    for piece in rt.vqa(image, question, adapter=True):
                        a += piece
                        yield a, gr.update(value=b, visible=True)
                    for piece in rt.vqa(image, question, adapter=False):
                        b += piece
                        yield a, gr.update(value=b, visible=True)
                else:
                    a = ""
                    for piece in rt.vqa(image, question, adapter=not adapter_off):
                        a += piece
                        yield a, gr.update(visible=False)
            except UserError as e:
                raise gr.Error(str(e), print_exception=False)

        def camera_image():
            """The current camera image, for the VQA tab."""
            return rt.camera.obs.image if rt.camera.obs is not None else None

        def history():
            """Finished episodes (newest first) and their JSON logs."""
            rows = rt.history.rows
            return fmt.history_rows(rows), [str(r.log_path) for r in rows] or None

        def on_unload(request: gr.Request):
            sid = _sid(request)
            rt.release(sid)
            panels.forget(sid)

        # ---------------------------------------------------------------- wiring
        out_msg = panel_outputs + [message]
        hist_timer = gr.Timer(2.0)
        hist_timer.tick(history, None, [history_table, history_files], api_name="history", concurrency_limit=None,
                        show_progress="hidden", trigger_mode="always_last")
        run_ev = run_btn.click(run, [instruction], out_msg, api_name="run", concurrency_limit=None, show_progress="hidden")
        instruction.submit(run, [instruction], out_msg, api_visibility="private", concurrency_limit=None, show_progress="hidden")
        step_btn.click(step, [instruction], out_msg, api_name="step", concurrency_limit=None, show_progress="hidden")
        exec_btn.click(execute, None, out_msg, api_name="execute", concurrency_limit=None, show_progress="hidden")
        edit_btn.click(edit, [block], out_msg, api_name="edit", concurrency_limit=None, show_progress="hidden")
        regen_btn.click(regenerate, None, out_msg, api_name="regenerate", concurrency_limit=None, show_progress="hidden")
        proceed_btn.click(proceed, None, out_msg, api_name="proceed", concurrency_limit=None, show_progress="hidden")
        retry_btn.click(retry, None, out_msg, api_name="retry", concurrency_limit=None, show_progress="hidden")
        stop_btn.click(stop, None, out_msg, api_name="stop", concurrency_limit=None, show_progress="hidden")
        reset_btn.click(reset, None, out_msg, api_name="reset", concurrency_limit=None, show_progress="hidden").then(
            history, None, [history_table, history_files], api_visibility="private", show_progress="hidden")

        # The live picture is an MJPEG stream (/camera.mjpg, added in serve()); the gripper/EE line polls.
        state_timer = gr.Timer(0.25)
        state_timer.tick(robot_state, None, [robot_state_box], api_visibility="private", concurrency_limit=None,
                         show_progress="hidden", trigger_mode="always_last")
        cam_api = gr.Button(visible=False)
        cam_api.click(camera_frame, None, [camera, robot_state_box], api_name="camera", show_progress="hidden")
        watch_timer = gr.Timer(0.25)
        watch_timer.tick(refresh, None, panel_outputs, api_name="panels", concurrency_limit=None,
                         show_progress="hidden", trigger_mode="always_last")
        refresh_hist.click(history, None, [history_table, history_files], api_visibility="private", show_progress="hidden")
        run_ev.then(history, None, [history_table, history_files], api_visibility="private", show_progress="hidden")

        use_cam.click(camera_image, None, [vqa_image], api_name="camera_image", show_progress="hidden")
        ask_btn.click(vqa, [vqa_image, question, adapter_off, side_by_side], [answer, answer_base], api_name="vqa",
                      concurrency_limit=1)
        question.submit(vqa, [vqa_image, question, adapter_off, side_by_side], [answer, answer_base],
                        api_visibility="private", concurrency_limit=1)

        demo.load(camera_image, None, [vqa_image], api_visibility="private", show_progress="hidden")
        demo.unload(on_unload)
    return demo


LIVE_CAMERA_HTML = (
    '<div class="cam"><div class="cam-label">Robot camera · live</div>'
    '<img id="camera-live" src="camera.mjpg" alt="live robot camera"></div>'
)


def add_camera_route(demo: gr.Blocks, rt: Runtime, fps: float = 10.0) -> None:
    """GET /camera.mjpg: the live camera as an MJPEG stream (multipart/x-mixed-replace) at `fps`.

    A browser shows it with a plain <img>, frame after frame, without a Gradio event per frame —
    so the picture stays fluid however busy the queue is. Same login as the page when --auth is set.
    """
    import asyncio

    from fastapi import HTTPException
    from fastapi.responses import StreamingResponse

    app = demo.app
    boundary = "frame"

    def logged_in(request: Request) -> bool:
        if getattr(app, "auth", None) is None:
            return True
        cid = getattr(app, "cookie_id", "")
        token = request.cookies.get(f"access-token-{cid}") or request.cookies.get(f"access-token-unsecure-{cid}")
        return app.tokens.get(token) is not None

    async def frames(request: Request):
        yield f"--{boundary}\r\n".encode()
        while True:  # Starlette cancels this generator when the client goes away
            # A frame every 1/fps s, new or not, like a camera: browsers show a part only once
            # the next one begins, and a steady rate lets a viewer see the stream is alive.
            if rt.camera.obs is not None:
                jpeg = rt.camera.jpeg_frame()
                head = f"Content-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode()
                yield head + jpeg + f"\r\n--{boundary}\r\n".encode()
            await asyncio.sleep(1.0 / fps)

    async def camera_mjpg(request: Request):
        if not logged_in(request):
            raise HTTPException(status_code=401, detail="log in first")
        return StreamingResponse(frames(request), media_type=f"multipart/x-mixed-replace; boundary={boundary}",
                                 headers={"Cache-Control": "no-store"})

    app.add_api_route("/camera.mjpg", camera_mjpg, methods=["GET"], include_in_schema=False)
    app.router.routes.insert(0, app.router.routes.pop())  # before Gradio's own catch-all routes


