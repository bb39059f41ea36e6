"""The WidowX adapter against fake interbotix_xs_modules packages (ROS 1 and ROS 2 signatures)."""

import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from robot.base import BRIDGE_WORKSPACE, EStopEngaged, Robot, SafetyError
from robot.widowx import R_DOWN, WidowX, WidowXConfig, WidowXError, WidowXUnavailable, load_interbotix
from tests.fakes import interbotix_core as fake

FAKES = Path(__file__).parent / "fakes"
_MODULES = ("interbotix_xs_modules", "interbotix_common_modules")


def _purge():
    for name in list(sys.modules):
        if name.split(".")[0] in _MODULES:
            del sys.modules[name]


@pytest.fixture(params=["ros1", "ros2"])
def ros(request, monkeypatch):
    _purge()
    monkeypatch.syspath_prepend(str(FAKES / request.param))
    fake.reset()
    yield request.param
    _purge()


class FakeCamera:
    def __init__(self):
        self.reads = 0

    def read(self):
        self.reads += 1
        return np.full((256, 256, 3), self.reads % 255, np.uint8)


def _connected(ros=None, **cfg):
    w = WidowX(WidowXConfig(**cfg), camera=FakeCamera())
    w.connect()
    return w


def _calls(name):
    return [c for c in fake.CALLS if c[0] == name]


def test_missing_package_is_one_clear_error(monkeypatch):
    _purge()
    monkeypatch.setattr(sys, "path", [p for p in sys.path if "fakes" not in p])
    with pytest.raises(WidowXUnavailable, match="interbotix_xs_modules.*not on PyPI.*source"):
        load_interbotix()
    w = WidowX()
    with pytest.raises(WidowXUnavailable):
        w.connect()
    with pytest.raises(WidowXError, match="not connected"):
        w.move(np.zeros(3))


def test_picks_the_ros_version_that_imports(ros):
    got, mod = load_interbotix()
    assert got == ros
    assert mod.__name__ == {"ros1": "interbotix_xs_modules.arm", "ros2": "interbotix_xs_modules.xs_robot.arm"}[ros]


def test_connect_home_and_shutdown(ros):
    w = _connected()
    assert isinstance(w, Robot)
    name, args, kw = _calls("InterbotixManipulatorXS")[0]
    assert args == ("wx250s",) and kw["moving_time"] == 0.2 and kw["group_name"] == "arm"
    assert (len(_calls("robot_startup")) == 1) == (ros == "ros2")
    # connected at the Interbotix zero pose (outside the Bridge box); home brings it inside, gripper down
    np.testing.assert_allclose(w.target, [0.458325, 0, 0.36065])
    w.home()
    (T,), kw = _calls("set_ee_pose_matrix")[-1][1:]
    np.testing.assert_allclose(T[:3, 3], (0.25, 0.0, 0.16))
    np.testing.assert_allclose(T[:3, :3], R_DOWN)
    assert BRIDGE_WORKSPACE.contains(w.ee_pos())
    assert w.gripper_opening() == 1.0
    w.disconnect()
    assert (len(_calls("robot_shutdown")) == 1) == (ros == "ros2")
    assert w.bot is None


def test_move_is_last_target_plus_filtered_delta_in_metres(ros):
    w = _connected()
    w.home()
    joints_before = w.joint_positions()
    cmd = w.move(np.array([0.02, -0.01, -0.03]), None)
    (T,), kw = _calls("set_ee_pose_matrix")[-1][1:]
    np.testing.assert_allclose(T[:3, 3], [0.27, -0.01, 0.13])  # metres, base frame
    np.testing.assert_allclose(T[:3, :3], R_DOWN)
    assert kw["custom_guess"] == joints_before  # seeded with the current joints
    assert kw["execute"] is True and kw["moving_time"] == 0.2 and kw["blocking"] is True
    np.testing.assert_allclose(cmd.target, w.target)
    # a too-long step is scaled by the safety filter before it reaches the arm
    cmd = w.move(np.array([0.0, 0.3, 0.0]))
    assert cmd.clamped
    (T,), _ = _calls("set_ee_pose_matrix")[-1][1:]
    np.testing.assert_allclose(T[:3, 3], [0.27, 0.04, 0.13])


def test_gripper_commands_use_each_ros_versions_names(ros):
    w = _connected(gripper_delay=0.3)
    w.home()
    fake.CALLS.clear()
    w.move(np.zeros(3), 0.0)
    w.move(np.zeros(3), 0.1)  # still closed: not re-sent
    w.move(np.zeros(3), 1.0)
    names = [c[0] for c in fake.CALLS]
    close, open_ = ("gripper.grasp", "gripper.release") if ros == "ros2" else ("gripper.close", "gripper.open")
    assert names == [close, open_]
    assert fake.CALLS[0][1] == (0.3,)
    assert "set_ee_pose_matrix" not in names  # zero motion sends no pose


def test_ik_failure_stops_the_episode(ros):
    w = _connected()
    w.home()
    before = w.target
    fake.STATE.fail_next = True
    with pytest.raises(WidowXError, match="no joint solution.*did not move.*e-stop"):
        w.move(np.array([0.01, 0, 0]))
    np.testing.assert_allclose(w.target, before)  # the target did not advance
    assert w.safety.engaged
    with pytest.raises(EStopEngaged):
        w.move(np.array([0.01, 0, 0]))
    w.safety.reset()
    w.move(np.array([0.01, 0, 0]))
    np.testing.assert_allclose(w.target, before + [0.01, 0, 0])


def test_stop_latches_and_holds_the_joints(ros):
    w = _connected()
    w.home()
    w.stop()
    name, (joints,), kw = _calls("set_joint_positions")[-1]
    assert joints == w.joint_positions() and kw["blocking"] is False
    with pytest.raises(EStopEngaged):
        w.move(np.array([0.01, 0, 0]))
    with pytest.raises(EStopEngaged):
        w.home()


def test_non_finite_commands_never_reach_the_arm(ros):
    w = _connected()
    w.home()
    n = len(fake.CALLS)
    with pytest.raises(SafetyError):
        w.move(np.array([np.inf, 0, 0]))
    assert len(fake.CALLS) == n


def test_observe_needs_a_camera(ros):
    w = WidowX()
    w.connect()
    with pytest.raises(WidowXError, match="no camera"):
        w.observe()
    w.camera = FakeCamera()
    obs = w.observe()
    assert obs.image.shape == (256, 256, 3) and obs.ee_pos.shape == (3,) and 0 <= obs.gripper <= 1


def test_sleep_pose_then_moves_start_from_there(ros):
    w = _connected()
    w.sleep()
    assert _calls("go_to_sleep_pose")
    np.testing.assert_allclose(w.target, [0.11, 0, 0.09])
    cmd = w.move(np.array([0.0, 0.0, 0.03]))  # from the sleep pose (inside the box)
    np.testing.assert_allclose(cmd.target, [0.11, 0, 0.12])


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="inside the safety workspace"):
        WidowXConfig(home=(0.458, 0, 0.361))
    with pytest.raises(ValueError, match="accel_time"):
        WidowXConfig(accel_time=0.15)


@settings(max_examples=40, deadline=None)
@given(st.lists(arrays(np.float64, (3,), elements=st.floats(-1, 1)), min_size=1, max_size=10))
def test_every_target_sent_is_inside_the_box(moves):
    _purge()
    sys.path.insert(0, str(FAKES / "ros2"))
    try:
        fake.reset()
        w = _connected()
        w.home()
        for d in moves:
            w.move(d)
        for _name, (T,), _kw in _calls("set_ee_pose_matrix"):
            assert BRIDGE_WORKSPACE.contains(T[:3, 3])
            np.testing.assert_allclose(T[:3, :3], R_DOWN)
    finally:
        sys.path.remove(str(FAKES / "ros2"))
        _purge()


# ---------------------------------------------------------------- issue 13: the measured arm, a hung move


def _land_off(w, offset):
    """The arm lands `offset` metres away from where it was sent (a collision, a bad IK branch)."""
    send = w.bot.arm.set_ee_pose_matrix

    def landing(T_sd, **kw):
        theta, ok = send(T_sd, **kw)
        w.bot.arm.T_sb[:3, 3] += offset
        return theta, ok

    w.bot.arm.set_ee_pose_matrix = landing


@pytest.mark.parametrize("offset, says", [((0.0, 0.07, 0.0), r"moved 8\.0 cm in one step"),
                                          ((0.0, 0.0, -0.04), r"2\.0 cm outside the workspace box")])
def test_a_measured_excursion_holds_the_arm_and_latches_the_estop(ros, offset, says):
    w = _connected()
    w.home()
    w.move(np.array([0.0, 0.0, -0.05]))
    w.move(np.array([0.0, 0.0, -0.05]))
    w.move(np.array([0.0, 0.0, -0.05]))  # z = 1 cm: the floor of the box is -1 cm
    _land_off(w, np.array(offset))
    fake.CALLS.clear()
    with pytest.raises(EStopEngaged, match="safety: the arm " + ".*" + says):
        w.move(np.array([0.0, 0.01, 0.0]), 0.0)
    assert _calls("set_joint_positions"), "the arm was not told to hold"
    assert not [c for c in fake.CALLS if c[0].startswith("gripper")], "a gripper command followed the excursion"
    with pytest.raises(EStopEngaged, match="safety"):
        w.move(np.zeros(3))


def test_a_pushed_arm_is_commanded_from_where_it_is(ros):
    w = _connected()
    w.home()
    w.bot.arm.T_sb[:3, 3] += (-0.04, 0.0, 0.0)  # pushed back 4 cm between steps
    cmd = w.move(np.array([0.05, 0.0, 0.0]))
    assert any("starts from where it is" in r for r in cmd.reasons)
    (T,), _ = _calls("set_ee_pose_matrix")[-1][1:]
    np.testing.assert_allclose(T[:3, 3], [0.26, 0.0, 0.16])  # the measured 0.21 + 5 cm, not 0.25 + 5 cm


def test_stop_reaches_the_arm_while_a_move_hangs(ros):
    """A driver call that hangs (20 s on the page): stop() from another thread commands the hold at once,
    and the hung move, when it returns, sends nothing more and raises."""
    import threading
    import time

    w = _connected()
    w.home()
    entered, release = threading.Event(), threading.Event()
    send = w.bot.arm.set_ee_pose_matrix

    def hanging(T_sd, **kw):
        entered.set()
        release.wait(20)
        return send(T_sd, **kw)

    w.bot.arm.set_ee_pose_matrix = hanging
    result = {}

    def episode():
        try:
            w.move(np.array([0.02, 0.0, 0.0]), 0.0)
        except Exception as e:  # noqa: BLE001 - the test inspects it
            result["error"] = e

    t = threading.Thread(target=episode)
    t.start()
    assert entered.wait(5)
    fake.CALLS.clear()
    t0 = time.perf_counter()
    w.stop()
    assert time.perf_counter() - t0 < 0.5
    assert t.is_alive(), "the move should still be hanging"
    name, (joints,), kw = _calls("set_joint_positions")[0]
    assert kw["blocking"] is False and joints == w.joint_positions()
    release.set()
    t.join(5)
    assert isinstance(result.get("error"), EStopEngaged)
    assert not [c for c in fake.CALLS if c[0].startswith("gripper")]
