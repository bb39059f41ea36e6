"""SharedRobot's e-stop reaches the arm while a move hangs in the driver; the driver lock reports a stuck holder."""

from __future__ import annotations

import threading
import time

import numpy as np

from app.lock import BUSY_MESSAGE, DriverLock
from app.robot_access import SharedRobot
from robot.base import FilteredCommand, SafetyFilter


class HangingArm:
    """A Robot whose move() blocks until released, like a driver waiting on a servo that never answers."""

    def __init__(self) -> None:
        self.safety = SafetyFilter()
        self.entered, self.release = threading.Event(), threading.Event()
        self.stopped_during_move = False
        self.moving = False

    def move(self, delta, gripper=None) -> FilteredCommand:
        cmd = self.safety.filter(np.full(3, 0.2), delta, gripper)
        self.moving = True
        self.entered.set()
        self.release.wait(20)
        self.moving = False
        return cmd

    def stop(self) -> None:
        self.safety.estop("stop() called on the hanging arm")
        self.stopped_during_move = self.moving

    def observe(self):
        raise NotImplementedError


def test_stop_calls_the_arms_own_stop_at_once_while_move_hangs():
    arm = HangingArm()
    shared = SharedRobot(arm, step_s=0.0)
    t = threading.Thread(target=lambda: shared.move(np.array([0.01, 0.0, 0.0])), daemon=True)
    t.start()
    assert arm.entered.wait(5)
    time.sleep(0.05)
    what, seconds = shared.in_flight()
    assert what == "move()" and seconds >= 0.05
    t0 = time.perf_counter()
    shared.stop()
    assert time.perf_counter() - t0 < 0.5
    assert arm.stopped_during_move, "the arm's stop() waited for move() to return"
    assert shared.safety.engaged
    arm.release.set()
    t.join(5)
    assert shared.in_flight() is None


def test_a_failing_arm_stop_is_reported_and_the_latch_still_holds():
    arm = HangingArm()

    def broken_stop():
        raise OSError("serial port gone")

    arm.stop = broken_stop
    shared = SharedRobot(arm)
    shared.stop()
    assert shared.safety.engaged and "serial port gone" in shared.stop_error


def test_a_stuck_holder_is_reported_until_it_lets_go():
    lock = DriverLock()
    assert lock.acquire("ann")
    assert lock.busy_message() == BUSY_MESSAGE
    lock.mark_stuck("the arm's move() has not returned for 20 s")
    assert lock.busy_for("bob") and lock.busy_message() == "robot stuck — the arm's move() has not returned for 20 s"
    assert lock.release("ann")
    assert lock.busy_message() == BUSY_MESSAGE and lock.acquire("bob")
    lock.mark_stuck("ignored: nobody else holds it")
    lock.release("bob")
    lock.mark_stuck("no holder: nothing is stuck")
    assert lock.stuck == ""
