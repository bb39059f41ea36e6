"""The demo's runtime without a browser: real sim, scripted policy, sim validator, the real loop."""

import time
from types import SimpleNamespace

import gradio as gr
import numpy as np
import pytest

from app.build import build_runtime
from app.config import from_args
from app.runtime import Busy, UserError, wait_until
from policy.episode_log import load_log
from app.handlers import PANEL_OUTPUTS, Handlers, Panels


@pytest.fixture(scope="module")
def rt(tmp_path_factory):
    cfg = from_args(["--policy", "scripted", "--stream-cps", "0", "--pace", "0", "--logs", str(tmp_path_factory.mktemp("logs"))], env={})
    runtime = build_runtime(cfg, camera_fps=20).start_camera()
    yield runtime
    runtime.close()


def _finish(rt, timeout=60):
    assert wait_until(lambda: not rt.running, timeout), "episode did not end"
    return rt.snapshot()


def test_spanish_instruction_runs_the_episode_and_logs_it(rt):
    rt.reset("a", seed=1)
    rt.start("recoge la zanahoria", "a")
    assert rt.lock.held_by("a")
    with pytest.raises(Busy):
        rt.start("pick up the carrot", "b")  # a second person watches
    with pytest.raises(Busy):
        rt.reset("b")
    v = _finish(rt)
    assert [s.name for s in v.subtasks][:1] == ["reach for the carrot"]
    assert v.commands and v.verdicts and v.finished
    assert not rt.lock.holder  # released at the episode's end
    row = rt.history.rows[0]
    assert row.instruction == "recoge la zanahoria"
    log = load_log(row.log_dir)  # the loop's own log, offered zipped
    assert log[0]["type"] == "EpisodeStarted" and log[-1]["type"] == "EpisodeDone" and log[-1]["success"]
    assert row.log_zip.is_file() and row.log_zip.stat().st_size > 0
    # the panels render what happened, and skip what did not change
    assert v.success and all(x.done for x in v.verdicts)  # the scripted expert on seed 1 does every subtask
    panels = Panels(rt)
    out = dict(zip(PANEL_OUTPUTS, panels.render("a", v)))
    assert "reach for the carrot" in out["subtasks"]
    assert out["validator"].count('<span class="vw">proceed</span>') == len(v.verdicts)
    assert panels.render("a", v) == [gr.skip()] * len(PANEL_OUTPUTS)  # nothing changed: every panel skipped


def test_the_page_handlers_run_stop_and_list_history_without_a_browser(rt):
    """What a click on Run, Stop and the History tab does, called as Gradio calls it."""
    h = Handlers(rt)
    ann, bob = SimpleNamespace(session_hash="ann"), SimpleNamespace(session_hash="bob")
    assert "new scene" in h.reset(ann)[-1]
    updates = list(h.run("pick up the carrot", ann))
    final = dict(zip(PANEL_OUTPUTS + ("message",), updates[-1]))
    assert len(updates) >= 2 and "Success" in final["status"] and final["message"] == ""
    assert "+" in final["commands"] and "proceed" in final["validator"]  # executed steps and verdicts shown
    assert h.panels_now(bob)[0] == final["status"]  # a watcher sees the same page
    rows, files = h.history()
    assert rows[0][1] == "pick up the carrot" and rows[0][2] == "✓" and len(files) == len(rows)
    assert h.stop(ann)[-1] == "**e-stop engaged — the arm holds where it is; Run or Reset scene re-arms it**"
    rt.reset("ann", seed=1)


def test_an_episode_reads_finished_only_once_its_history_row_and_the_lock_are_done(rt, monkeypatch):
    """Whoever sees the episode end (the driver's stream, a watcher, /history next) sees its row and a free robot,
    however long the log takes to zip."""
    add = rt.history.add

    def slow_add(view):
        time.sleep(0.5)  # a long episode's frames take a while to zip
        return add(view)

    monkeypatch.setattr(rt.history, "add", slow_add)
    rt.reset("a", seed=1)
    rows = len(rt.history.rows)
    view = rt.start("pick up the carrot", "a")
    assert wait_until(lambda: view.finished, 60)
    assert rt.lock.holder is None and len(rt.history.rows) == rows + 1
    assert rt.history.rows[0].success == view.success and rt.history.rows[0].log_zip.is_file()
    _finish(rt)
    rt.reset("b", seed=1)  # the robot is free for someone else


def test_stop_mid_episode_stops_the_arm_and_frees_the_lock(rt):
    rt.reset("a", seed=2)
    rt.robot.step_s = 0.1  # paced, so there is a middle to stop in
    try:
        rt.start("pick up the carrot", "a")
        assert wait_until(lambda: rt.view is not None and len(rt.view.commands) >= 2, 30)
        msg = rt.stop("b")  # anyone may press the e-stop
        assert "stopped" in msg
        v = _finish(rt, 10)
        assert v.success is False and "e-stop" in v.reason
        n, pos = len(v.commands), rt.robot.call(lambda r: r.ee_pos())
        time.sleep(0.5)
        assert len(rt.snapshot().commands) == n
        assert np.allclose(rt.robot.call(lambda r: r.ee_pos()), pos, atol=2e-3)  # the arm holds
        assert rt.robot.safety.engaged and rt.lock.holder is None
        with pytest.raises(Exception):
            rt.robot.move(np.array([0.01, 0, 0]))  # latched until Run or Reset re-arms it
    finally:
        rt.robot.step_s = 0.0
    rt.reset("b", seed=3)
    assert not rt.robot.safety.engaged


def test_step_through_edit_is_reparsed_and_filtered(rt):
    rt.reset("a", seed=4)
    rt.start("pick up the carrot", "a", step_through=True)
    assert wait_until(lambda: rt.view.awaiting == "execute", 30)
    with pytest.raises(Busy):
        rt.respond("b", "execute")
    rt.respond("a", "edit", "[[move up 9.0 cm]]")  # parses, but more than the 5 cm step limit
    assert wait_until(lambda: rt.view.commands, 30)
    c = rt.view.commands[0]
    assert c.clamps and np.linalg.norm(c.executed) <= 0.05 + 1e-9
    assert wait_until(lambda: rt.view.awaiting == "execute" or rt.view.finished, 30)
    if not rt.view.finished:
        rt.respond("a", "edit", "[[move up 2.0 mm]]")  # does not parse: shown, never executed
        assert wait_until(lambda: any(s.error for s in rt.view.subtasks), 10)
        assert "cm" in [s.error for s in rt.view.subtasks if s.error][0]
        rt.respond("a", "regenerate")
        assert wait_until(lambda: rt.view.awaiting == "execute", 30)
    rt.stop("a")
    _finish(rt, 10)


def test_errors_a_person_can_cause_are_messages(rt):
    with pytest.raises(UserError, match="type an instruction"):
        rt.start("   ", "a")
    with pytest.raises(UserError, match="no task like"):
        rt.start("make me a coffee", "a")
    assert rt.lock.holder is None  # a failed start leaves the robot free
    with pytest.raises(UserError, match="no episode is running"):
        rt.verdict("a", True)
    with pytest.raises(UserError, match="scripted policy"):
        rt.vqa(np.zeros((8, 8, 3), np.uint8), "what is this?")


def test_tab_close_releases_the_lock_and_stops(rt):
    rt.reset("a", seed=5)
    rt.robot.step_s = 0.1
    try:
        rt.start("pick up the carrot", "a")
        rt.release("b")  # a watcher leaving changes nothing
        assert rt.running
        rt.release("a")
        assert rt.lock.holder is None
        assert wait_until(lambda: not rt.running, 10)
    finally:
        rt.robot.step_s = 0.0
    rt.reset("c", seed=6)


def test_camera_feed_is_fresh_and_changes_when_the_arm_moves(rt):
    rt.reset("a", seed=7)
    first = rt.camera.frame_id
    img0 = rt.camera.obs.image.copy()
    assert img0.shape == (256, 256, 3) and img0.dtype == np.uint8
    rt.robot.move(np.array([0.0, 0.0, 0.03]))
    assert wait_until(lambda: rt.camera.frame_id > first, 5)
    assert not np.array_equal(rt.camera.obs.image, img0)
    rt.reset("a", seed=7)


def test_vqa_with_a_model_streams_from_the_same_weights(tiny_model_dir, tmp_path):
    """With an hf model the VQA tab answers (a tiny random Gemma 3: the text is noise, the wiring is real)."""
    cfg = from_args(["--policy", "hf", "--model", str(tiny_model_dir), "--pace", "0", "--logs", str(tmp_path)], env={})
    runtime = build_runtime(cfg, camera_fps=5)
    try:
        assert runtime.has_model and runtime.names.policy == "hf"
        image = np.zeros((64, 64, 3), np.uint8)
        with_adapter = list(runtime.vqa(image, "What is on the table?", adapter=True))
        base = list(runtime.vqa(image, "What is on the table?", adapter=False))
        assert with_adapter and base and all(isinstance(p, str) for p in with_adapter + base)
        with pytest.raises(UserError, match="type a question"):
            runtime.vqa(image, "  ")
    finally:
        runtime.close()


def test_manual_validator_waits_for_the_two_buttons(tmp_path):
    cfg = from_args(["--policy", "scripted", "--validator", "manual", "--stream-cps", "0", "--pace", "0", "--logs", str(tmp_path)], env={})
    runtime = build_runtime(cfg, camera_fps=5)
    try:
        assert runtime.names.validator == "manual"
        runtime.start("pick up the carrot", "a")
        assert wait_until(lambda: runtime.view.awaiting == "verdict", 30)
        panels = dict(zip(PANEL_OUTPUTS, Panels(runtime).render("a", runtime.snapshot())))
        assert "Manual validator" in panels["validator"]
        with pytest.raises(Busy):
            runtime.verdict("b", True)
        runtime.verdict("a", False)  # not done → a retry of the same subtask
        assert wait_until(lambda: runtime.view.retries == 1 and runtime.view.awaiting == "verdict", 30)
        runtime.verdict("a", True)
        assert wait_until(lambda: len(runtime.view.verdicts) == 2, 10)
        v = runtime.snapshot().verdicts
        assert [x.done for x in v] == [False, True] and v[0].validator == "manual"
        runtime.stop("a")
        assert wait_until(lambda: not runtime.running, 10)
    finally:
        runtime.close()


def test_a_model_tries_what_the_simulator_cannot_name_and_the_person_judges(tiny_model_dir, tmp_path):
    """With a model driving, an instruction the sim cannot name still runs: the model reads it, the page
    says why the simulator cannot judge it, and the manual validator (the person) judges instead."""
    cfg = from_args(["--policy", "hf", "--model", str(tiny_model_dir), "--validator", "sim", "--pace", "0",
                     "--max-retries", "0", "--logs", str(tmp_path)], env={})
    runtime = build_runtime(cfg, camera_fps=5)
    try:
        from robot.sim.instructions import InstructionRefused, match_instruction

        with pytest.raises(InstructionRefused) as refused:
            match_instruction("pick up the purple dragon")
        view = runtime.start("pick up the purple dragon", "a")
        assert f"cannot name this task ({refused.value.reason})" in view.notice
        assert "you judge each subtask" in view.notice
        assert wait_until(lambda: runtime.view.validator == "manual" or runtime.view.finished, 120)
        assert runtime.view.validator == "manual"
        runtime.stop("a")
        assert wait_until(lambda: not runtime.running, 30)
    finally:
        runtime.close()


def test_the_scripted_expert_still_refuses_what_the_simulator_cannot_name(rt):
    with pytest.raises(UserError, match="could not start: the simulator has no task like “pick up the purple dragon”"):
        rt.start("pick up the purple dragon", "a")
    assert not rt.lock.held_by("a")
