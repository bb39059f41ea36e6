"""The Gradio 6 page: its layout, and which `Handlers` method each component calls. No logic lives here.

Every action is a named API endpoint (api_name), so gradio_client can drive the demo:
run, step, execute, edit, regenerate, proceed, retry, stop, reset, camera, camera_image, panels, history, vqa,
report (listed in the README). What they do is `app.handlers`; the live picture is an MJPEG stream at
/camera.mjpg (`app.camera_stream`).
"""

from __future__ import annotations

from functools import partial
from types import SimpleNamespace

import gradio as gr

from app import format as fmt
from app.camera_stream import LIVE_CAMERA_HTML
from app.handlers import PANEL_OUTPUTS, Handlers
from app.report_view import report_panels
from app.runtime import NO_MODEL_MESSAGE, Runtime

FALLBACK_EXAMPLES = {
    "English": ["pick up the carrot", "put the carrot on the plate"],
    "Español": ["recoge la zanahoria"],
    "中文": ["把胡萝卜放进锅里"],
    "हिन्दी": ["गाजर उठाओ"],
}


def example_instructions() -> list[list[str]]:
    """[[instruction, language], ...] from the simulator's templates in assets/instructions.json."""
    try:
        from robot.sim.instructions import examples

        return [[text, lang] for text, lang in examples()]
    except (ImportError, OSError, KeyError, ValueError):
        return [[s, lang] for lang, v in FALLBACK_EXAMPLES.items() for s in v]


def build(rt: Runtime) -> gr.Blocks:
    """The page for `rt`: four tabs laid out, then every component connected to its handler."""
    page = SimpleNamespace()  # the components, by name, for the wiring
    with gr.Blocks(title="VLM2VLA — actions as language") as demo:
        names = rt.names
        gr.HTML(fmt.header_html(names.robot, names.policy, names.model, names.validator), elem_id="header")
        page.status = gr.HTML(fmt.status_html(None, False, False), elem_id="status")
        with gr.Tabs():
            with gr.Tab("Robot", id="robot"):
                _robot_tab(page, rt)
            with gr.Tab("Ask the model (VQA)", id="vqa"):
                _vqa_tab(page, rt)
            with gr.Tab("History", id="history"):
                _history_tab(page)
            with gr.Tab("Evaluation", id="evaluation") as page.eval_tab:
                _evaluation_tab(page)
        page.message = gr.Markdown(elem_id="message")
        _wire(page, Handlers(rt), demo)
    return demo


# ---------------------------------------------------------------------------- layout


def _robot_tab(page: SimpleNamespace, rt: Runtime) -> None:
    """Camera and controls | subtasks, plan → actions, step-through and verdict rows, validator | plot, commands."""
    with gr.Row(equal_height=False):
        with gr.Column(scale=4, min_width=320):
            gr.HTML(LIVE_CAMERA_HTML, elem_id="camera")
            page.camera = gr.Image(format="jpeg", visible=False, interactive=False)  # for /camera API clients
            page.robot_state = gr.HTML(elem_id="robot-state")
            page.instruction = gr.Textbox(label="Instruction", placeholder="pick up the carrot", lines=1, max_lines=2,
                                          elem_id="instruction")
            with gr.Row():
                page.run_btn = gr.Button("▶ Run", variant="primary", elem_id="run", min_width=90)
                page.step_btn = gr.Button("⏯ Step", elem_id="step", min_width=90)
            with gr.Row():
                page.stop_btn = gr.Button("■ Stop", variant="stop", elem_id="stop", min_width=90)
                page.reset_btn = gr.Button("↺ Reset scene", elem_id="reset", min_width=90)
            gr.Examples(examples=[[s] for s, _ in example_instructions()], inputs=[page.instruction],
                        label="Examples — English · Español · 中文 · हिन्दी", examples_per_page=12)
        with gr.Column(scale=5, min_width=360):
            gr.Markdown("#### Subtasks")
            page.subtasks = gr.HTML(fmt.subtasks_html(None), elem_id="subtasks")
            gr.Markdown("#### Plan → actions")
            page.stream = gr.HTML(fmt.stream_html(None), elem_id="stream")
            with gr.Row(visible=False, elem_id="step-controls") as page.step_row:
                with gr.Column():
                    page.block = gr.Textbox(label="Action block (edit, then Apply edit — re-parsed and safety-filtered)",
                                            lines=2, elem_id="block")
                    with gr.Row():
                        page.exec_btn = gr.Button("Execute", variant="primary", elem_id="execute")
                        page.edit_btn = gr.Button("Apply edit", elem_id="edit")
                        page.regen_btn = gr.Button("Regenerate", elem_id="regenerate")
            with gr.Row(visible=False, elem_id="verdict-controls") as page.verdict_row:
                page.proceed_btn = gr.Button("✓ Done — proceed", variant="primary", elem_id="proceed")
                page.retry_btn = gr.Button("↻ Not done — retry", elem_id="retry")
            gr.Markdown("#### Validator")
            page.validator = gr.HTML(fmt.validator_html(None, rt.names.validator == "manual"), elem_id="validator")
        with gr.Column(scale=6, min_width=400):
            page.plot = gr.Plot(label="End-effector path by subtask · commanded targets · workspace · objects", elem_id="plot")
            gr.Markdown("#### Executed commands")
            page.commands = gr.HTML(fmt.commands_html(None), elem_id="commands")


def _vqa_tab(page: SimpleNamespace, rt: Runtime) -> None:
    if not rt.has_model:
        gr.HTML(f'<div class="vqa-note">{fmt._E(NO_MODEL_MESSAGE)}</div>', elem_id="vqa-note")
    with gr.Row():
        with gr.Column(scale=1):
            page.vqa_image = gr.Image(label="Image (the current camera view, or upload one)", sources=["upload", "clipboard"],
                                      type="numpy", height=300, elem_id="vqa-image")
            page.use_cam = gr.Button("Use the current camera image", elem_id="use-camera")
        with gr.Column(scale=1):
            page.question = gr.Textbox(label="Question", placeholder="What objects are on the table?", elem_id="question")
            with gr.Row():
                page.adapter_off = gr.Checkbox(label="Adapter off (answer as the base model)", value=False)
                page.side_by_side = gr.Checkbox(label="Side by side: with and without the adapter", value=False)
            page.ask_btn = gr.Button("Ask", variant="primary", elem_id="ask", interactive=rt.has_model)
            with gr.Row():
                page.answer = gr.Textbox(label="Answer", lines=6, elem_id="answer", interactive=False)
                page.answer_base = gr.Textbox(label="Base model (adapter off)", lines=6, visible=False, elem_id="answer-base",
                                              interactive=False)


def _history_tab(page: SimpleNamespace) -> None:
    page.history_table = gr.Dataframe(headers=["#", "instruction", "success", "retries", "time (s)", "result"],
                                      datatype=["number", "str", "str", "number", "number", "str"],
                                      interactive=False, elem_id="history")
    page.history_files = gr.File(label="Episode logs (zip: episode.jsonl + frames; training.verbalize --format episode_log reads them)", file_count="multiple", interactive=False,
                                 elem_id="history-files")
    page.refresh_hist = gr.Button("Refresh", size="sm")


def _evaluation_tab(page: SimpleNamespace) -> None:
    """The latest evaluation report, read-only: where it came from, its tables, its figures."""
    with gr.Row():
        page.report_source = gr.Markdown(elem_id="report-source")
        page.reload_report = gr.Button("Reload", size="sm", scale=0, min_width=90, elem_id="reload-report")
    page.report_tables = gr.Markdown(elem_id="report-tables")
    page.report_figures = gr.HTML(elem_id="report-figures")


# ---------------------------------------------------------------------------- wiring


def _wire(page: SimpleNamespace, h: Handlers, demo: gr.Blocks) -> None:
    """Connect each component to its handler; `api_name` makes it an endpoint of the API."""
    panels = [getattr(page, name) for name in PANEL_OUTPUTS]
    out_msg = panels + [page.message]
    history_out = [page.history_table, page.history_files]
    quiet = dict(concurrency_limit=None, show_progress="hidden")
    private = dict(api_visibility="private", show_progress="hidden")
    # first: the private uses of h.history below would otherwise take the name "history"
    gr.Timer(2.0).tick(h.history, None, history_out, api_name="history", trigger_mode="always_last", **quiet)

    run_ev = page.run_btn.click(h.run, [page.instruction], out_msg, api_name="run", **quiet)
    page.instruction.submit(h.run, [page.instruction], out_msg, api_visibility="private", **quiet)
    page.step_btn.click(h.step, [page.instruction], out_msg, api_name="step", **quiet)
    page.exec_btn.click(h.execute, None, out_msg, api_name="execute", **quiet)
    page.edit_btn.click(h.edit, [page.block], out_msg, api_name="edit", **quiet)
    page.regen_btn.click(h.regenerate, None, out_msg, api_name="regenerate", **quiet)
    page.proceed_btn.click(h.proceed, None, out_msg, api_name="proceed", **quiet)
    page.retry_btn.click(h.retry, None, out_msg, api_name="retry", **quiet)
    page.stop_btn.click(h.stop, None, out_msg, api_name="stop", **quiet)
    page.reset_btn.click(h.reset, None, out_msg, api_name="reset", **quiet).then(h.history, None, history_out, **private)

    # The live picture is an MJPEG stream (/camera.mjpg, added by app.camera_stream); the gripper/EE line polls.
    gr.Timer(0.25).tick(h.robot_state, None, [page.robot_state], api_visibility="private", trigger_mode="always_last",
                        **quiet)
    gr.Button(visible=False).click(h.camera, None, [page.camera, page.robot_state], api_name="camera",
                                   show_progress="hidden")
    gr.Timer(0.25).tick(h.panels_now, None, panels, api_name="panels", trigger_mode="always_last", **quiet)
    page.refresh_hist.click(h.history, None, history_out, **private)
    run_ev.then(h.history, None, history_out, **private)

    vqa_in = [page.vqa_image, page.question, page.adapter_off, page.side_by_side]
    page.use_cam.click(h.camera_image, None, [page.vqa_image], api_name="camera_image", show_progress="hidden")
    page.ask_btn.click(h.vqa, vqa_in, [page.answer, page.answer_base], api_name="vqa", concurrency_limit=1)
    page.question.submit(h.vqa, vqa_in, [page.answer, page.answer_base], api_visibility="private", concurrency_limit=1)
    demo.load(h.camera_image, None, [page.vqa_image], **private)

    # The report is read when the tab is opened (a visitor who never opens it costs nothing) and on Reload.
    report_out = [page.report_source, page.report_tables, page.report_figures]
    read = partial(report_panels, h.rt.config.report)
    page.reload_report.click(read, None, report_out, api_name="report", **quiet)
    page.eval_tab.select(read, None, report_out, **private)
    demo.unload(h.leave)
