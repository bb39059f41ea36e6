"""The demo's UI-independent pieces: driver lock, episode view, panel text, 3D figure, flags."""

import threading
import zipfile

import pytest

from app.config import MICRO_MODEL, ConfigError, from_args, is_loopback
from app.format import commands_html, status_html, stream_html, subtasks_html, validator_html
from app.lock import DriverLock
from app.plot import trajectory_figure
from app.session import EpisodeView, History
from policy import events as ev
from robot.base import BRIDGE_WORKSPACE


# --------------------------------------------------------------------------- lock
def test_lock_one_driver_and_release_only_by_holder():
    lock = DriverLock()
    assert lock.acquire("a")
    assert lock.acquire("a")  # re-entrant for the same tab
    assert not lock.acquire("b")
    assert lock.busy_for("b") and not lock.busy_for("a")
    assert not lock.release("b")  # a watcher cannot release it
    assert lock.held_by("a")
    assert lock.release("a")
    assert lock.acquire("b") and lock.held_by("b")


def test_lock_is_exclusive_under_contention():
    lock = DriverLock()
    winners = []
    barrier = threading.Barrier(8)

    def grab(name):
        barrier.wait()
        if lock.acquire(name):
            winners.append(name)

    threads = [threading.Thread(target=grab, args=(f"s{i}",)) for i in range(8)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert len(winners) == 1


# --------------------------------------------------------------------------- episode view
def _episode(success=True):
    yield ev.EpisodeStarted(0.0, "recoge la zanahoria", "scripted", "sim", 3)
    yield ev.Tokens(0.1, "subtasks", -1, "1. reach for the carrot\n")
    yield ev.Tokens(0.2, "subtasks", -1, "2. grasp the carrot")
    yield ev.SubtasksPlanned(0.3, ("reach for the carrot", "grasp the carrot"), "…", 0.3)
    yield ev.SubtaskStarted(0.4, 0, "reach for the carrot", 1)
    yield ev.Tokens(0.5, "plan", 0, "move forward")
    yield ev.Tokens(0.6, "actions", 0, "[[move forward 2.0 cm]")
    yield ev.Tokens(0.6, "actions", 0, ", [move forward 9.0 cm]]")
    steps = (((0.02, 0.0, 0.0), None), ((0.09, 0.0, 0.0), None))
    yield ev.ActionsProposed(0.7, 0, "move forward", "[[move forward 2.0 cm], [move forward 9.0 cm]]", steps, 0.1, 0.2, 12, True)
    yield ev.StepExecuted(0.8, 0, 0, (0.02, 0, 0), (0.02, 0, 0), (0.22, 0, 0.1), (0.22, 0, 0.1), 1.0)
    yield ev.StepExecuted(0.9, 0, 1, (0.09, 0, 0), (0.05, 0, 0), (0.27, 0, 0.1), (0.27, 0, 0.1), 1.0,
                          ("step 9.0 cm scaled to the 5.0 cm limit",))
    yield ev.VerdictGiven(1.0, 0, False, "the gripper is short of the carrot", "sim", 0.004)
    yield ev.Retry(1.0, 0, 2, "the gripper is short of the carrot")
    yield ev.SubtaskStarted(1.1, 0, "reach for the carrot", 2)
    yield ev.VerdictGiven(1.5, 0, True, "above the carrot", "sim", 0.003)
    yield ev.SubtaskStarted(1.6, 1, "grasp the carrot", 1)
    yield ev.EpisodeDone(2.0, success, "all subtasks done" if success else "stopped", 1, {"decode": 0.4})


def test_view_folds_the_event_stream():
    v = EpisodeView()
    it = _episode()
    for e in it:
        v.apply(e)
        if isinstance(e, ev.Tokens) and e.stage == "subtasks":
            assert "reach" in subtasks_html(v)  # streamed before the list is parsed
        if isinstance(e, ev.Tokens) and e.stage == "actions":
            assert "[[move forward 2.0 cm]" in stream_html(v)
            assert "cursor" in stream_html(v)  # still streaming
        if isinstance(e, ev.Retry):
            assert v.subtasks[0].status == "retrying"
            assert "retrying" in subtasks_html(v)
            assert "retry" in validator_html(v) and "4 ms" in validator_html(v)
    assert v.finished and v.success and v.retries == 1
    assert [s.status for s in v.subtasks] == ["done", "done"]
    assert v.subtasks[0].attempts == 2
    html = commands_html(v)
    assert "clamped" in html and "5.0 cm limit" in html
    assert v.path()[0][0] == pytest.approx((0.2, 0, 0.1))  # start = first target - first executed
    assert len(v.path()) == 3
    assert "Success" in status_html(v, False, True)
    assert "busy" in status_html(v, True, False)


def test_stream_panel_shows_plan_and_actions_without_the_prompt_prefixes():
    from policy.prompts import ACTIONS_PREFIX, PLAN_PREFIX, format_plan_actions

    answer = format_plan_actions("move forward", "[[move forward 2.0 cm]]")
    plan, actions = answer.split("\n")
    v = EpisodeView()
    for e in (ev.EpisodeStarted(0.0, "pick up the carrot", "scripted", "sim", 3),
              ev.SubtasksPlanned(0.1, ("reach for the carrot",), "1. reach for the carrot", 0.1),
              ev.SubtaskStarted(0.2, 0, "reach for the carrot", 1),
              ev.Tokens(0.3, "plan", 0, plan + "\n"), ev.Tokens(0.4, "actions", 0, actions)):
        v.apply(e)
    html = stream_html(v)
    assert PLAN_PREFIX.strip() not in html and ACTIONS_PREFIX.strip() not in html
    assert '<div class="plan">move forward' in html and '<pre class="actions" id="action-text">[[move forward 2.0 cm]]' in html


def test_stopped_episode_marks_running_subtask_failed_and_history_offers_the_loop_log(tmp_path):
    v = EpisodeView()
    for e in _episode(success=False):
        v.apply(e)
    assert v.subtasks[1].status == "failed"
    hist = History(tmp_path)
    row = hist.add(v)  # no loop log folder in these hand-made events: nothing to offer
    assert row.success is False and row.instruction == "recoge la zanahoria" and row.log_zip is None
    (tmp_path / "ep" / "images").mkdir(parents=True)
    (tmp_path / "ep" / "episode.jsonl").write_text('{"type": "EpisodeStarted"}\n')
    v.log_dir = str(tmp_path / "ep")
    row = hist.add(v)
    assert hist.rows[0] is row and row.number == 2
    with zipfile.ZipFile(row.log_zip) as z:
        assert "episode.jsonl" in z.namelist()


def test_an_unparsable_subtask_list_is_shown_then_the_next_try_streams_afresh():
    v = EpisodeView()
    v.apply(ev.EpisodeStarted(0.0, "x", "scripted", "sim"))
    v.apply(ev.Tokens(0.1, "subtasks", -1, "grab it then lift"))
    v.apply(ev.SubtasksRejected(0.2, "grab it then lift", "subtask list: expected lines like '1. grasp the carrot'"))
    html = subtasks_html(v)
    assert "subtask list not understood" in html and "grab it then lift" not in html and not v.subtasks
    v.apply(ev.Tokens(0.3, "subtasks", -1, "1. reach for the carrot"))
    assert "1. reach for the carrot" in subtasks_html(v)
    v.apply(ev.SubtasksPlanned(0.4, ("reach for the carrot",), "1. reach for the carrot", 0.1))
    assert [s.name for s in v.subtasks] == ["reach for the carrot"] and not v.subtasks_error
    assert "not understood" not in subtasks_html(v)


def test_view_fail_closes_an_unfinished_episode():
    v = EpisodeView()
    v.apply(ev.EpisodeStarted(0.0, "x", "scripted", "sim"))
    v.fail("the backend crashed: boom")
    assert v.finished and v.success is False and "boom" in v.reason


# --------------------------------------------------------------------------- figure
def test_trajectory_figure_colours_by_subtask_and_draws_box_targets_objects():
    path = [((0.2, 0, 0.1), 0), ((0.25, 0, 0.1), 0), ((0.25, 0.05, 0.05), 1)]
    fig = trajectory_figure(path, [((0.25, 0, 0.1), 0, False), ((0.3, 0.05, 0.05), 1, True)],
                            ["reach", "grasp"], BRIDGE_WORKSPACE, {"carrot": (0.3, 0.05, 0.02)}, (0.25, 0.05, 0.05))
    names = [t.name for t in fig.data]
    assert names[0] == "workspace" and "1. reach" in names and "2. grasp" in names
    grasp = fig.data[names.index("2. grasp")]
    assert list(grasp.x) == [0.25, 0.25]  # starts at the previous subtask's last point
    assert fig.data[names.index("1. reach")].line.color != grasp.line.color
    targets = fig.data[names.index("commanded targets")]
    assert list(targets.marker.symbol) == ["circle-open", "x"]  # clamped target marked
    assert "carrot" in fig.data[names.index("objects")].text
    box = fig.data[0]
    assert sum(1 for x in box.x if x is None) == 12  # a box has twelve edges


# --------------------------------------------------------------------------- flags
def test_defaults_are_the_embedded_demo_on_loopback():
    c = from_args([], env={})
    assert (c.robot, c.policy, c.validator, c.host, c.port) == ("sim", "hf", "sim", "127.0.0.1", 7860)
    assert (c.model, c.adapter) == (str(MICRO_MODEL / "base"), str(MICRO_MODEL / "lora"))  # the shipped micro model
    assert from_args(["--policy", "hf", "--model", "tiny/"], env={}).adapter is None  # another base: no micro adapter


@pytest.mark.parametrize("argv", [["--host", "0.0.0.0"], ["--share"], ["--host", "192.168.1.5"]])
def test_refuses_to_expose_without_auth(argv):
    with pytest.raises(ConfigError, match="--auth USER:PASS"):
        from_args(argv, env={})
    c = from_args(argv + ["--auth", "ann:secret"], env={})
    assert c.auth == ("ann", "secret")
    assert from_args(argv, env={"VLM2VLA_AUTH": "bo:pw"}).auth == ("bo", "pw")


def test_flag_errors_are_one_line_and_name_the_fix():
    for argv, match in [
        (["--auth", "nocolon"], "USER:PASS"),
        (["--policy", "openai"], "--server"),
        (["--robot", "widowx", "--policy", "scripted"], "scripted policy"),
    ]:
        with pytest.raises(ConfigError, match=match) as e:
            from_args(argv, env={})
        assert "\n" not in str(e.value)
    assert from_args(["--robot", "widowx", "--policy", "openai", "--server", "http://x/v1"], env={}).validator == "manual"
    assert is_loopback("localhost") and is_loopback("127.0.0.2") and not is_loopback("0.0.0.0")
