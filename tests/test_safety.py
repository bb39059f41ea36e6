"""The safety filter: box, step limit, finite numbers, e-stop latch."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from robot.base import BRIDGE_WORKSPACE, EStopEngaged, SafetyConfig, SafetyError, SafetyFilter, Workspace

WS = BRIDGE_WORKSPACE
any_float = st.floats(allow_nan=True, allow_infinity=True, width=64)
inside = st.tuples(*[st.floats(lo, hi) for lo, hi in zip(WS.low, WS.high)]).map(np.array)
anywhere = arrays(np.float64, (3,), elements=st.floats(-2, 2))
deltas = arrays(np.float64, (3,), elements=st.floats(-1, 1))


@settings(max_examples=500, deadline=None)
@given(inside, deltas, st.one_of(st.none(), st.floats(-2, 3)))
def test_from_inside_nothing_leaves_the_box_or_exceeds_the_step(start, delta, grip):
    f = SafetyFilter()
    cmd = f.filter(start, delta, grip)
    assert WS.contains(cmd.target)
    assert np.linalg.norm(cmd.delta) <= f.config.max_step + 1e-12
    np.testing.assert_allclose(cmd.target, start + cmd.delta)
    if grip is not None:
        assert 0 <= cmd.gripper <= 1
    # clamps are reported, never silent
    changed = not np.array_equal(start + cmd.delta, start + delta) or (grip is not None and cmd.gripper != grip)
    assert cmd.clamped == changed


@settings(max_examples=300, deadline=None)
@given(anywhere, deltas)
def test_from_outside_it_only_moves_back_toward_the_box(start, delta):
    f = SafetyFilter()
    cmd = f.filter(start, delta)
    assert np.linalg.norm(cmd.delta) <= f.config.max_step + 1e-12

    def dist(p):
        return np.linalg.norm(p - WS.clip(p))

    assert dist(cmd.target) <= dist(start) + 1e-12


@settings(max_examples=300, deadline=None)
@given(inside, st.tuples(any_float, any_float, any_float), st.one_of(st.none(), any_float))
def test_non_finite_never_passes(start, delta, grip):
    f = SafetyFilter()
    bad = not all(math.isfinite(v) for v in delta) or (grip is not None and not math.isfinite(grip))
    if bad:
        with pytest.raises(SafetyError):
            f.filter(start, np.array(delta), grip)
    else:
        cmd = f.filter(start, np.array(delta), grip)
        assert np.all(np.isfinite(cmd.target))


@settings(max_examples=100, deadline=None)
@given(inside, deltas)
def test_estop_latches_until_reset(start, delta):
    f = SafetyFilter()
    f.estop("test")
    for _ in range(3):
        with pytest.raises(EStopEngaged, match="reset"):
            f.filter(start, delta)
    f.reset()
    assert WS.contains(f.filter(start, delta).target)


def test_clamp_reasons_are_readable():
    f = SafetyFilter()
    cmd = f.filter(np.array([0.44, 0, 0.1]), np.array([0.03, 0, 0]))
    assert cmd.clamped and "workspace box" in cmd.reasons[0]
    cmd = f.filter(np.array([0.3, 0, 0.1]), np.array([0, 0, 0.2]))
    assert "scaled to the 5.0 cm limit" in cmd.reasons[0]


def test_bad_configs_are_refused():
    with pytest.raises(ValueError, match="low must be below high"):
        Workspace(low=(0, 0, 0), high=(0, 1, 1))
    with pytest.raises(ValueError, match="max_step"):
        SafetyFilter(SafetyConfig(max_step=float("nan")))
    with pytest.raises(SafetyError, match="3-vectors"):
        SafetyFilter().filter(np.zeros(2), np.zeros(3))


def test_wait_engaged_wakes_on_estop():
    import threading
    import time

    f = SafetyFilter()
    t0 = time.perf_counter()
    assert f.wait_engaged(0.05) is False and time.perf_counter() - t0 >= 0.05
    threading.Timer(0.05, f.estop).start()
    t0 = time.perf_counter()
    assert f.wait_engaged(5.0) is True and time.perf_counter() - t0 < 2.0


# ---------------------------------------------------------------- the measured arm (issue 13)
near = arrays(np.float64, (3,), elements=st.floats(-0.0025, 0.0025))  # norm < resync_tol (5 mm)


@settings(max_examples=200, deadline=None)
@given(inside, inside, deltas)
def test_a_target_is_never_more_than_a_step_from_the_measured_arm(last_target, arm, delta):
    f = SafetyFilter()
    cmd = f.filter(last_target, delta, measured=arm)
    assert WS.contains(cmd.target)
    assert np.linalg.norm(cmd.target - arm) <= f.config.max_step + 1e-12
    gap = np.linalg.norm(last_target - arm)
    resynced = any("starts from where it is" in r for r in cmd.reasons)
    assert resynced == (gap > f.config.resync_tol)
    if resynced:
        np.testing.assert_array_equal(cmd.start, arm)  # planned from the arm, and says so


@settings(max_examples=150, deadline=None)
@given(inside, near, deltas)
def test_a_lagging_arm_keeps_the_last_target_so_the_lag_does_not_add_up(last_target, lag, delta):
    f = SafetyFilter()
    arm = WS.clip(last_target + lag)
    cmd = f.filter(last_target, delta, measured=arm)
    np.testing.assert_array_equal(cmd.start, last_target)
    if np.linalg.norm(delta) < 0.04:  # far from every limit: exactly the last target plus the delta
        if WS.contains(last_target + delta):
            np.testing.assert_allclose(cmd.target, last_target + delta)


def test_watch_latches_on_a_jump_or_an_excursion_and_names_it():
    f = SafetyFilter()
    a = np.array([0.30, 0.0, 0.10])
    assert f.watch(a, a + [0.055, 0, 0]) is None and not f.engaged  # within the step + tolerance
    assert "moved 8.0 cm in one step" in f.watch(a, a + [0.08, 0, 0])
    with pytest.raises(EStopEngaged, match="safety: the arm moved 8.0 cm"):
        f.filter(a, np.zeros(3))
    f.reset()
    edge = np.array([0.30, 0.24, 0.10])
    assert f.watch(edge, edge + [0, 0.019, 0]) is None  # 0.9 cm outside: within the tolerance
    assert "2.0 cm outside the workspace box" in f.watch(edge, edge + [0, 0.03, 0])
    f.reset()
    above = np.array([0.30, 0.0, 0.35])  # homed above the box: only getting farther out counts
    assert f.watch(above, above + [0, 0, -0.04]) is None
    assert "outside the workspace box" in f.watch(above, above + [0, 0, 0.02])
    f.reset()
    assert "non-finite" in f.watch(a, [np.nan, 0, 0]) and f.engaged


def test_the_new_tolerances_are_checked():
    with pytest.raises(ValueError, match="resync_tol"):
        SafetyConfig(resync_tol=0.0)
    with pytest.raises(ValueError, match="excursion_tol"):
        SafetyConfig(excursion_tol=float("inf"))
