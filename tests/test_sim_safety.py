"""The safety guarantee holds for the simulated arm itself, not only for its commanded target (issue 13).

Random action blocks (any deltas; the filter clamps them) drive the real MuJoCo arm, and every
measured position during every step (ten per step, as the arm reports them to the safety
filter's `watch`) is checked: never more than one step (5 cm) plus the stated tolerance from
where the step began, never outside the workspace box by more than the tolerance. Before the
fix the arm planned from its last target, which drifted from the blocked or lagging arm, and
jumped 7.5 cm in one step (`benchmarks/sim_safety.py` measures it over thousands of steps).

`VLM2VLA_SIM_BLOCKS=N` runs N examples instead of the quick default.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from robot.base import EStopEngaged
from robot.sim import SimConfig, SimRobot

EXAMPLES = int(os.environ.get("VLM2VLA_SIM_BLOCKS", "8"))

axis = st.floats(-0.06, 0.06, allow_nan=False)
step = st.tuples(st.sampled_from([(0, 1), (0, 2), (1, 2), (0, 1, 2)]), axis, axis, axis,
                 st.sampled_from([None, 0.0, 1.0]))
blocks = st.lists(st.lists(step, min_size=1, max_size=6), min_size=1, max_size=3)


@pytest.fixture(scope="module")
def sim():
    s = SimRobot(SimConfig(image_size=32))
    yield s
    s.disconnect()


class Recorder:
    """The measured hand after every stretch of physics, grouped per move (wraps mujoco.mj_step, so it
    sees what the arm did whatever the robot's own checks are)."""

    def __init__(self, sim: SimRobot, monkeypatch) -> None:
        import mujoco

        self.sim = sim
        self.moves: list[tuple[np.ndarray, list[np.ndarray]]] = []
        step = mujoco.mj_step

        def recording_step(m, d, *a, **kw):
            step(m, d, *a, **kw)
            if d is sim.data and self.moves:
                self.moves[-1][1].append(sim.ee_pos())

        monkeypatch.setattr(mujoco, "mj_step", recording_step)

    def move(self, delta, grip):
        self.moves.append((self.sim.ee_pos(), []))
        return self.sim.move(delta, grip)


def _delta(axes, a, b, c) -> np.ndarray:
    d = np.zeros(3)
    for i, v in zip(axes, (a, b, c)):
        d[i] = v
    return d


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 3), program=blocks)
def test_random_blocks_keep_the_measured_arm_inside_the_limits(sim, seed, program):
    sim.reset(seed, "pick_up")
    cfg = sim.safety.config
    ws, limit = cfg.workspace, cfg.max_step + cfg.excursion_tol
    with pytest.MonkeyPatch.context() as mp:
        rec = Recorder(sim, mp)
        for block in program:
            for axes, a, b, c, grip in block:
                try:
                    rec.move(_delta(axes, a, b, c), grip)
                except EStopEngaged as e:  # the arm itself went beyond the limits: the fix failed
                    pytest.fail(f"the simulated arm tripped its own excursion check: {e}")
    assert rec.moves and all(path for _, path in rec.moves)
    for before, path in rec.moves:
        for p in path:
            assert np.linalg.norm(p - before) <= limit, (before, p)
            assert np.linalg.norm(p - ws.clip(p)) <= cfg.excursion_tol, p


def _push(sim: SimRobot, where) -> None:
    """Put the arm somewhere else between steps, as a person's hand or a collision would."""
    import mujoco

    q = sim._ik(np.asarray(where, float), sim.data.qpos[sim._arm_qadr].copy())[0]
    sim.data.qpos[sim._arm_qadr] = q
    sim.data.qvel[:] = 0
    sim.data.ctrl[:6] = q
    mujoco.mj_forward(sim.model, sim.data)


def test_a_pushed_arm_is_commanded_from_where_it_is(sim):
    """Commanded from its last target, an arm pushed 4 cm back would jump 9 cm on a 5 cm step."""
    sim.reset(0, "pick_up")
    sim.move(np.array([0.02, 0.0, -0.04]), 1.0)
    pushed = sim.target - [0.04, 0.0, 0.0]
    _push(sim, pushed)
    before = sim.ee_pos()
    cmd = sim.move(np.array([0.05, 0.0, 0.0]))
    assert any("starts from where it is" in r for r in cmd.reasons), cmd.reasons
    moved = np.linalg.norm(sim.ee_pos() - before)
    assert 0.04 <= moved <= 0.05 + sim.safety.config.excursion_tol, moved


def test_an_excursion_latches_the_estop_holds_the_arm_and_says_why(sim, monkeypatch):
    """A joint path that swings the hand away (what an IK branch flip does) is stopped by the
    measured check within a fraction of the step, latched, and reported."""
    sim.reset(2, "pick_up")
    far = sim._ik(np.array([0.40, 0.20, 0.05]), sim.data.qpos[sim._arm_qadr].copy())[0]
    monkeypatch.setattr(sim, "_joint_path", lambda q0, start, target: (np.repeat(far[None], 8, axis=0), ""))
    start = sim.ee_pos()
    with pytest.raises(EStopEngaged, match=r"safety: the arm moved \d+\.\d cm in one step"):
        sim.move(np.array([0.01, 0.0, 0.0]))
    assert sim.safety.engaged
    held = sim.ee_pos()
    assert np.linalg.norm(held - start) < 0.12  # stopped on the way, not at the far pose
    monkeypatch.undo()
    with pytest.raises(EStopEngaged, match="moved"):
        sim.move(np.array([0.01, 0.0, 0.0]))  # latched until reset
    sim.safety.reset()
    sim.move(np.zeros(3))
    assert np.linalg.norm(sim.ee_pos() - held) < 0.06  # holds where it stopped; no snap toward the far pose


def test_stop_from_another_thread_holds_the_arm_during_a_step(sim):
    import threading

    sim.reset(3, "pick_up")
    hit = threading.Event()

    def stop_midway(before, now, _watch=sim.safety.watch):
        if not hit.is_set():
            hit.set()
            t = threading.Thread(target=sim.stop)  # as the page's Stop does, while move() runs here
            t.start()
            t.join()
        return _watch(before, now)

    sim.safety.watch = stop_midway
    try:
        start = sim.ee_pos()
        with pytest.raises(EStopEngaged, match="stop"):
            sim.move(np.array([0.05, 0.0, 0.0]))
    finally:
        del sim.safety.watch
    assert np.linalg.norm(sim.ee_pos() - start) < 0.03  # cut short, not the full 5 cm
