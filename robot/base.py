"""What every robot shares: the observation, the `Robot` protocol and the safety filter.

Units are SI: positions and deltas in metres, in the robot base frame
(+x forward, away from the base; +y left; +z up). The gripper is a float in
[0, 1] where 1 is fully open.

Every motion command passes `SafetyFilter.filter` before it reaches an arm,
simulated or real. The filter never silently changes a command: whatever it
clamps is listed in `FilteredCommand.reasons`, and what it cannot make safe
(non-finite numbers, an engaged e-stop) raises.

The guarantee is for the arm, not for its commanded target: robots pass the
*measured* end-effector position to the filter (`measured=`), which plans from it
whenever the arm is not where it was told to go, and bounds every target by the
step limit from the measured pose. After (and, where the robot can, during) each
move the robot hands the measured positions to `SafetyFilter.watch`, which latches
the e-stop with the reason when the arm itself went beyond the box or moved more
than a step, plus a stated tolerance (`SafetyConfig.excursion_tol`).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

__all__ = [
    "Observation",
    "Robot",
    "PoseReader",
    "Workspace",
    "SafetyConfig",
    "SafetyFilter",
    "FilteredCommand",
    "SafetyError",
    "EStopEngaged",
    "BRIDGE_WORKSPACE",
]


@dataclass(frozen=True)
class Observation:
    """One snapshot of the robot.

    image: (H, W, 3) uint8 RGB from the main (over-the-shoulder) camera.
    ee_pos: (3,) end-effector position in metres, base frame.
    gripper: measured opening in [0, 1] (1 = open).
    wrist_image: optional (H, W, 3) uint8 RGB from a wrist camera.
    """

    image: np.ndarray
    ee_pos: np.ndarray
    gripper: float
    timestamp: float = 0.0
    wrist_image: np.ndarray | None = None


@runtime_checkable
class Robot(Protocol):
    """The arm as the policy sees it (after LeRobot's connect / observe / act / disconnect).

    `move` applies one end-effector step: `delta` (3,) metres in the base frame and
    a gripper target in [0, 1] (None keeps the current one). Implementations route
    it through `self.safety.filter` and return the `FilteredCommand` they executed.
    """

    safety: "SafetyFilter"

    def connect(self) -> None: ...

    def observe(self) -> Observation: ...

    def move(self, delta: np.ndarray, gripper: float | None = None) -> "FilteredCommand": ...

    def home(self) -> None: ...

    def stop(self) -> None:
        """Latch the e-stop and hold the arm. Must return at once and be safe to call from any thread
        while another thread is inside `move()` (the e-stop must not wait for a step to end)."""
        ...

    def disconnect(self) -> None: ...


@runtime_checkable
class PoseReader(Protocol):
    """A robot that reads its end-effector position and gripper opening without a camera frame
    (the sim and the WidowX do). The policy loop uses it, when a robot has it, to read the pose
    after each step without rendering and to watch the fingers settle after a gripper command."""

    def ee_pos(self) -> np.ndarray: ...

    def gripper_opening(self) -> float: ...


@dataclass(frozen=True)
class Workspace:
    """An axis-aligned box in the base frame, metres."""

    low: tuple[float, float, float]
    high: tuple[float, float, float]

    def __post_init__(self) -> None:
        if not all(math.isfinite(v) for v in (*self.low, *self.high)):
            raise ValueError(f"Workspace bounds must be finite numbers, got low={self.low} high={self.high}")
        if any(lo >= hi for lo, hi in zip(self.low, self.high)):
            raise ValueError(f"Workspace low must be below high on every axis, got low={self.low} high={self.high}")

    def contains(self, p: np.ndarray, tol: float = 1e-9) -> bool:
        p = np.asarray(p, dtype=float)
        return bool(np.all(p >= np.asarray(self.low) - tol) and np.all(p <= np.asarray(self.high) + tol))

    def clip(self, p: np.ndarray) -> np.ndarray:
        return np.clip(np.asarray(p, dtype=float), self.low, self.high)

    @property
    def center(self) -> np.ndarray:
        return (np.asarray(self.low) + np.asarray(self.high)) / 2


# The bounds BridgeData V2's evaluation used for the WidowX 250S.
BRIDGE_WORKSPACE = Workspace(low=(0.10, -0.15, -0.01), high=(0.45, 0.25, 0.25))


@dataclass(frozen=True)
class SafetyConfig:
    workspace: Workspace = BRIDGE_WORKSPACE
    max_step: float = 0.05  # metres per command, Euclidean, measured from where the arm is
    # When the measured end effector is farther than this from its last commanded target (blocked by
    # the table or an object, pushed, or lagging), the next step is planned from the measured pose.
    # Below it the step starts from the target, so the normal servo lag (< 1 mm) does not add up.
    resync_tol: float = 0.005
    # How far the *measured* arm may go beyond the box, or beyond max_step in one move, before the
    # e-stop latches (servo overshoot and contact give a few millimetres; more means something is wrong).
    excursion_tol: float = 0.01

    def __post_init__(self) -> None:
        for name in ("max_step", "resync_tol", "excursion_tol"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"SafetyConfig.{name} must be a positive number of metres, got {v}")


class SafetyError(ValueError):
    """A command that cannot be made safe (non-finite numbers); nothing was sent."""


class EStopEngaged(RuntimeError):
    """The e-stop latch is set; nothing moves until `SafetyFilter.reset()`."""


@dataclass(frozen=True)
class FilteredCommand:
    """A command as the filter lets it through.

    requested: the delta that was asked for (metres).
    delta: the delta that will be executed (metres).
    target: start + delta, the commanded end-effector position.
    gripper: the gripper target in [0, 1], or None for unchanged.
    reasons: one human-readable line per adjustment; empty when unchanged.
    """

    start: np.ndarray
    requested: np.ndarray
    delta: np.ndarray
    target: np.ndarray
    gripper: float | None
    reasons: tuple[str, ...] = field(default=())

    @property
    def clamped(self) -> bool:
        return bool(self.reasons)


def _fmt(v: np.ndarray) -> str:
    return "(" + ", ".join(f"{x * 100:+.1f}" for x in v) + ") cm"


def _outside(p: list[float], ws: Workspace) -> float:
    """How far point `p` lies outside box `ws` (0 inside), metres."""
    return math.hypot(*(max(lo - v, 0.0, v - hi) for v, lo, hi in zip(p, ws.low, ws.high)))


class SafetyFilter:
    """Workspace box, per-step limit, finite numbers only, and an e-stop latch.

    Guarantees (property-tested): from a start inside the box, the target is inside
    the box and the step is at most `max_step`; from a start outside the box (a
    robot homed outside it), the step is at most `max_step` and never increases the
    distance to the box. Non-finite input raises `SafetyError`; while the e-stop is
    engaged every call raises `EStopEngaged`.

    With `measured` (the arm's measured position, which every robot passes), the step
    is planned from the measured pose whenever the arm is more than `resync_tol` from
    its last target, and the target is never more than `max_step` from the measured arm
    (inside the box). `watch(before, now)` checks where the arm really went.
    """

    def __init__(self, config: SafetyConfig | None = None) -> None:
        self.config = config or SafetyConfig()
        if not (math.isfinite(self.config.max_step) and self.config.max_step > 0):
            raise ValueError(f"SafetyConfig.max_step must be a positive number of metres, got {self.config.max_step}")
        self._estop = threading.Event()  # thread-safe: the UI's Stop button sets it from another thread
        self._estop_reason = ""

    # -- e-stop latch -------------------------------------------------------------
    def estop(self, reason: str = "e-stop pressed") -> None:
        self._estop_reason = reason
        self._estop.set()

    def reset(self) -> None:
        self._estop.clear()
        self._estop_reason = ""

    @property
    def engaged(self) -> bool:
        return self._estop.is_set()

    def wait_engaged(self, timeout: float) -> bool:
        """Sleep up to `timeout` seconds, waking at once if the e-stop is engaged; True if it is.

        For code that paces motion (a 5 Hz step shown in real time) and must not sleep
        through a Stop."""
        return self._estop.wait(timeout)

    def check(self) -> None:
        """Raise `EStopEngaged` if the latch is set."""
        if self._estop.is_set():
            raise EStopEngaged(f"{self._estop_reason}; call reset() before moving again")

    # -- the filter ------------------------------------------------------------------
    def filter(
        self, start: np.ndarray, delta: np.ndarray, gripper: float | None = None, measured: np.ndarray | None = None
    ) -> FilteredCommand:
        """`start`: the last commanded target; `measured`: where the arm is (None: trust `start`)."""
        self.check()
        start = np.asarray(start, dtype=float).reshape(-1)
        requested = np.asarray(delta, dtype=float).reshape(-1)
        if start.shape != (3,) or requested.shape != (3,):
            raise SafetyError(f"expected 3-vectors in metres, got start shape {start.shape} and delta shape {requested.shape}")
        if not np.all(np.isfinite(requested)):
            raise SafetyError(f"rejected a non-finite delta {requested.tolist()}; nothing was sent to the arm")
        if not np.all(np.isfinite(start)):
            raise SafetyError(f"the robot reports a non-finite position {start.tolist()}; check the arm before moving")
        reasons: list[str] = []
        if gripper is not None:
            g = float(gripper)
            if not math.isfinite(g):
                raise SafetyError(f"rejected a non-finite gripper target {gripper!r}; nothing was sent to the arm")
            if not 0.0 <= g <= 1.0:
                reasons.append(f"gripper target {g:.3f} clamped to [0, 1]")
                g = min(max(g, 0.0), 1.0)
            gripper = g

        ws, max_step = self.config.workspace, self.config.max_step
        if measured is not None:
            measured = np.asarray(measured, dtype=float).reshape(-1)
            if measured.shape != (3,) or not np.all(np.isfinite(measured)):
                raise SafetyError(f"the robot reports a non-finite or malformed position {measured.tolist()}; check the arm before moving")
            gap = float(np.linalg.norm(start - measured))
            if gap > self.config.resync_tol:
                reasons.append(f"the arm is {gap * 100:.1f} cm from its last target (blocked, pushed or lagging): "
                               f"this step starts from where it is, {_fmt(measured)}")
                start = measured
        step = requested.copy()
        scale = float(np.max(np.abs(step)))
        norm = scale * float(np.linalg.norm(step / scale)) if scale > 0 else 0.0  # no overflow for huge inputs
        if norm > max_step:
            step *= max_step / norm
            reasons.append(f"step {norm * 100:.1f} cm scaled to the {max_step * 100:.1f} cm limit")

        if ws.contains(start):
            target = ws.clip(start + step)
            if not np.array_equal(target, start + step):
                reasons.append(f"target {_fmt(start + step)} clamped to the workspace box at {_fmt(target)}")
        else:
            # Outside the box (e.g. homed above it): only moves that bring the arm
            # back toward the box, at most max_step at a time.
            inside = ws.clip(start)
            back = inside - start
            dist = float(np.linalg.norm(back))
            target = start + (back if dist <= max_step else back * (max_step / dist))
            reasons.append(f"start {_fmt(start)} is outside the workspace box; moving back toward it instead")
        if measured is not None and start is not measured:
            off = target - measured
            dist = float(np.linalg.norm(off))
            if dist > max_step:  # the arm lags its target a little: the step is bounded from the arm
                near = measured + off * (max_step / dist)
                target = ws.clip(near) if ws.contains(start) else near
                reasons.append(f"target is {dist * 100:.1f} cm from the arm at {_fmt(measured)}; "
                               f"brought to the {max_step * 100:.1f} cm limit at {_fmt(target)}")
        return FilteredCommand(
            start=start,
            requested=requested,
            delta=target - start,
            target=target,
            gripper=gripper,
            reasons=tuple(reasons),
        )

    # -- where the arm really went ------------------------------------------------------
    def watch(self, before: np.ndarray, now: np.ndarray) -> str | None:
        """Check one measured move of the arm, from `before` (measured when the move began) to `now`.

        Latches the e-stop and returns the reason when the arm moved more than `max_step` plus
        `excursion_tol`, went farther outside the box than it started by more than `excursion_tol`,
        or reports a non-finite position; None when the move stayed within the limits. Robots call it
        after each move (the sim also during it), hold the arm, and then `check()` raises the reason.
        """
        cfg, ws = self.config, self.config.workspace
        # plain floats: the sim calls this ten times per step, and numpy's per-call overhead dominates
        b = [float(v) for v in np.asarray(before, dtype=float).reshape(-1)]
        n = [float(v) for v in np.asarray(now, dtype=float).reshape(-1)]
        reason = None
        if not all(math.isfinite(v) for v in (*b, *n)):
            reason = f"the arm reports a non-finite position {n}"
        else:
            moved = math.dist(n, b)
            out_before, out_now = _outside(b, ws), _outside(n, ws)
            if moved > cfg.max_step + cfg.excursion_tol:
                reason = (f"the arm moved {moved * 100:.1f} cm in one step, from {_fmt(np.array(b))} to {_fmt(np.array(n))} "
                          f"(limit {cfg.max_step * 100:.1f} cm + {cfg.excursion_tol * 100:.1f} cm tolerance)")
            elif out_now > out_before + cfg.excursion_tol:
                reason = (f"the arm is {out_now * 100:.1f} cm outside the workspace box at {_fmt(np.array(n))} "
                          f"(tolerance {cfg.excursion_tol * 100:.1f} cm)")
        if reason is not None:
            self.estop("safety: " + reason)
        return reason
