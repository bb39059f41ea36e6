"""The MuJoCo arm: kinematics, control, safety, grasp assist, determinism, rendering."""

import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from robot.base import BRIDGE_WORKSPACE, EStopEngaged, Observation, Robot, SafetyError
from robot.sim import PICKABLES, ScriptedExpert, SimConfig, SimRobot, make_task
from robot.sim.scene import OBJECTS
from robot.sim.tasks import is_lifted


@pytest.fixture(scope="module")
def sim():
    s = SimRobot()
    yield s
    s.disconnect()


def test_published_kinematics_put_the_zero_pose_ee_where_interbotix_says(sim):
    d = sim._ik_data
    d.qpos[:] = 0
    import mujoco

    mujoco.mj_kinematics(sim.model, d)
    np.testing.assert_allclose(d.site_xpos[sim._ee], [0.458325, 0.0, 0.36065], atol=1e-6)


def test_home_is_inside_the_bridge_box_with_the_gripper_down(sim):
    sim.reset(0, "pick_up")
    assert isinstance(sim, Robot)
    obs = sim.observe()
    assert isinstance(obs, Observation)
    assert obs.image.shape == (256, 256, 3) and obs.image.dtype == np.uint8
    assert BRIDGE_WORKSPACE.contains(obs.ee_pos)
    np.testing.assert_allclose(obs.ee_pos, SimConfig().home, atol=2e-3)
    np.testing.assert_allclose(sim.ee_rpy(), 0, atol=2e-2)  # Bridge's rpy is relative to gripper-down
    assert obs.gripper > 0.95
    # objects rest on the table top (z = 0)
    for name in PICKABLES:
        z = sim.object_positions()[name][2]
        assert 0.0 <= z <= 0.03, (name, z)


def test_moves_track_the_commanded_deltas_and_keep_the_gripper_down(sim):
    sim.reset(1, "pick_up")
    start = sim.ee_pos()
    for delta in ([0.02, 0, 0], [0, 0.025, 0], [0, 0, -0.03], [-0.01, -0.01, 0.01]):
        before = sim.ee_pos()
        cmd = sim.move(np.array(delta), 1.0)
        assert not cmd.clamped
        np.testing.assert_allclose(sim.ee_pos() - before, delta, atol=2.5e-3)
        np.testing.assert_allclose(sim.ee_rpy(), 0, atol=3e-2)
    np.testing.assert_allclose(sim.ee_pos() - start, [0.01, 0.015, -0.02], atol=3e-3)


def test_every_command_goes_through_the_safety_filter(sim):
    sim.reset(2, "pick_up")
    sim.move(np.array([0.0, 0.0, -0.14]))  # toward the table: z limit is -1 cm
    cmd = sim.move(np.array([0.3, 0.0, 0.0]))
    assert cmd.clamped and "scaled to the 5.0 cm limit" in cmd.reasons[0]
    assert np.linalg.norm(cmd.delta) <= 0.05 + 1e-12
    state = sim.data.qpos.copy()
    with pytest.raises(SafetyError):
        sim.move(np.array([np.nan, 0.0, 0.0]))
    np.testing.assert_array_equal(sim.data.qpos, state)  # nothing moved


def test_stop_latches_the_estop_until_reset(sim):
    sim.reset(3, "pick_up")
    sim.stop()
    assert sim.safety.engaged
    with pytest.raises(EStopEngaged):
        sim.move(np.array([0.01, 0, 0]))
    with pytest.raises(EStopEngaged):
        sim.home()
    sim.reset(3)
    assert not sim.safety.engaged
    sim.move(np.array([0.01, 0, 0]))


@settings(max_examples=15, deadline=None)
@given(st.lists(arrays(np.float64, (3,), elements=st.floats(-0.5, 0.5)), min_size=1, max_size=8))
def test_the_arm_never_leaves_the_workspace_box(moves):
    s = _shared()
    s.reset(4, "pick_up")
    for d in moves:
        cmd = s.move(d, 1.0)
        assert BRIDGE_WORKSPACE.contains(cmd.target)
        # measured position: within servo tracking error of the box
        ee = s.ee_pos()
        assert np.all(ee >= np.array(BRIDGE_WORKSPACE.low) - 0.01) and np.all(ee <= np.array(BRIDGE_WORKSPACE.high) + 0.01)


_SHARED = []


def _shared() -> SimRobot:
    if not _SHARED:
        _SHARED.append(SimRobot())
    return _SHARED[0]


def _reach_and_grasp(s: SimRobot, task) -> ScriptedExpert:
    e = ScriptedExpert(s, task)
    for i in range(2):
        seg = e.plan_segment(i)
        for d, g in zip(seg.deltas, seg.gripper):
            s.move(d, g)
    return e


def test_grasp_assist_holds_while_closed_and_drops_when_opened(sim):
    task = make_task("pick_up", seed=5, object="carrot")
    sim.reset(5, task)
    _reach_and_grasp(sim, task)
    assert sim.held == "carrot" and task.subtask_done(sim, 1)
    z0 = sim.object_positions()["carrot"][2]
    for _ in range(4):
        sim.move(np.array([0, 0, 0.025]), 0.0)
    assert sim.object_positions()["carrot"][2] > z0 + 0.08
    assert task.success(sim)
    # open in mid-air: the weld goes, the carrot falls back to the table, the task fails visibly
    sim.move(np.zeros(3), 1.0)
    assert sim.held is None
    for _ in range(3):
        sim.move(np.zeros(3), 1.0)
    assert sim.object_positions()["carrot"][2] < OBJECTS["carrot"].rest_z + 0.02
    assert not task.success(sim) and not is_lifted(sim, "carrot")


def test_without_the_assist_grasps_hold_by_friction():
    s = SimRobot(SimConfig(grasp_assist=False))
    task = make_task("pick_up", seed=5, object="carrot")
    s.reset(5, task)
    from robot.sim import run_expert

    assert run_expert(s, task).success
    assert s.held is None and all(s.touching("carrot"))  # pinched, not welded


def test_home_state_and_object_poses(sim):
    sim.reset(3, "pick_and_place")
    for _ in range(3):
        sim.move(np.array([0.02, -0.02, -0.02]), 0.0)
    sim.home()
    np.testing.assert_allclose(sim.ee_pos(), SimConfig().home, atol=3e-3)
    np.testing.assert_allclose(sim.target, SimConfig().home)
    st_ = sim.state()
    assert st_.shape == (7,) and np.allclose(st_[3:6], 0, atol=0.03) and st_[6] < 0.2  # still closed
    pos = sim.object_positions()
    assert set(pos) == {"carrot", "eggplant", "banana", "plate", "pot", "towel", "japan", "italy", "brazil"}
    assert all(p.shape == (3,) for p in pos.values())


def test_closing_on_nothing_welds_nothing(sim):
    sim.reset(6, "pick_up")
    for _ in range(3):
        sim.move(np.array([0, 0, 0.02]), 0.0)  # closing up in the air
    assert sim.held is None
    assert sim.gripper_opening() < 0.1


def test_same_seed_same_episode_bit_for_bit():
    a, b = SimRobot(), SimRobot()
    runs = []
    for s in (a, b, a):
        task = make_task("pick_and_place", seed=7)
        s.reset(7, task)
        e = ScriptedExpert(s, task, noise=0.003, seed=7)
        seg = e.plan_segment(0)
        for d, g in zip(seg.deltas, seg.gripper):
            s.move(d, g)
        runs.append((s.data.qpos.copy(), s.observe().image, task))
    for other in runs[1:]:
        np.testing.assert_array_equal(runs[0][0], other[0])
        np.testing.assert_array_equal(runs[0][1], other[1])
        assert runs[0][2] == other[2]
    a.reset(8, "pick_and_place")
    assert not np.array_equal(a.data.qpos, runs[0][0])


def test_layouts_vary_with_the_seed(sim):
    seen = set()
    for seed in range(6):
        sim.reset(seed, "pick_up")
        seen.add(tuple(np.round(sim.object_positions()["carrot"][:2], 3)))
    assert len(seen) == 6


def test_scene_image_shows_the_objects(sim):
    sim.reset(0, "pick_up")
    img = sim.observe().image.astype(int)
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    orange = (r > 200) & (g > 70) & (g < 160) & (b < 60)  # carrot
    yellow = (r > 200) & (g > 180) & (b < 90)  # banana
    assert orange.sum() > 15 and yellow.sum() > 15
    assert img.std() > 20


def test_wrist_view_is_optional():
    s = SimRobot(SimConfig(wrist_camera=True, image_size=64))
    obs = s.observe()
    assert obs.image.shape == (64, 64, 3) and obs.wrist_image.shape == (64, 64, 3)
    assert not np.array_equal(obs.image, obs.wrist_image)
    assert SimRobot(SimConfig(image_size=64)).observe().wrist_image is None


def test_bad_configs_are_refused():
    with pytest.raises(ValueError, match="inside the safety workspace"):
        SimConfig(home=(0.6, 0, 0.1))
    with pytest.raises(ValueError, match="image_size"):
        SimConfig(image_size=4)
    with pytest.raises(ValueError, match="unknown task"):
        SimRobot().reset(0, "juggle")


def test_gl_backend_is_chosen_automatically_when_unset():
    env = {k: v for k, v in os.environ.items() if k not in ("MUJOCO_GL", "PYOPENGL_PLATFORM")}
    code = "import robot.sim, os; from robot.sim import SimRobot; SimRobot().observe(); print(os.environ['MUJOCO_GL'])"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, cwd=root)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] in ("egl", "osmesa")


def test_a_broken_backend_is_reported_not_crashed():
    from robot.sim import _gl

    assert _gl._probe("no_such_backend")  # a real failing probe returns its reason


def test_loading_transformers_after_a_render_does_not_crash():
    """Mesa's LLVM and triton's clash unless triton loads first (robot/sim/_gl.py sees to it).

    Run in a fresh process: the crash is a segfault, and the order only matters the first time.
    """
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "from robot.sim.robot import SimRobot\n"
        "r = SimRobot(); r.connect(); r.observe()\n"
        "import peft  # loads triton, as the hf backend and VQA do\n"
        "print('ok')\n"
    )
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "ok" in out.stdout, (out.returncode, out.stderr[-2000:])
