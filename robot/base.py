"""What every robot shares: the observation, the `Robot` protocol and the safety filter.

Units are SI: positions and deltas in metres, in the robot base frame
(+x forward, away from the base; +y left; +z up). The gripper is a float in
[0, 1] where 1 is fully open.

Every motion command passes `SafetyFilter.filter` before it reaches an arm,
simulated or real. The filter never silently changes a command: whatever it
clamps is listed in `FilteredCommand.reasons`, and what it cannot make safe
(non-finite numbers, an engaged e-stop) raises.
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

    def stop(self) -> None: ...

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
    max_step: float = 0.05  # metres per command, Euclidean


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


class SafetyFilter:
    """Workspace box, per-step limit, finite numbers only, and an e-stop latch.

    Guarantees (property-tested): from a start inside the box, the target is inside
    the box and the step is at most `max_step`; from a start outside the box (a
    robot homed outside it), the step is at most `max_step` and never increases the
    distance to the box. Non-finite input raises `SafetyError`; while the e-stop is
    engaged every call raises `EStopEngaged`.
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
    def filter(self, start: np.ndarray, delta: np.ndarray, gripper: float | None = None) -> FilteredCommand:
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
        return FilteredCommand(
            start=start,
            requested=requested,
            delta=target - start,
            target=target,
            gripper=gripper,
            reasons=tuple(reasons),
        )
