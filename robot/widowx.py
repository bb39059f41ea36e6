"""The real WidowX 250S through the Interbotix Python API (`interbotix_xs_modules`).

Both ROS generations are supported, chosen by what imports:

- ROS 2: `interbotix_xs_modules.xs_robot.arm.InterbotixManipulatorXS`; gripper `grasp()` /
  `release()`; on distributions that have it, `interbotix_common_modules.common_robot.robot`
  `robot_startup()` / `robot_shutdown()` (older ones: `bot.shutdown()`).
- ROS 1: `interbotix_xs_modules.arm.InterbotixManipulatorXS`; gripper `close()` / `open()`.

A move is what BridgeData V2's controller does, with two differences. The target is the
last target plus the safety-filtered delta while the measured arm is where it was sent, and
the measured pose plus the delta when it is not (`SafetyFilter.filter(measured=...)`); it is
sent with `arm.set_ee_pose_matrix` with the gripper pointing down and the current joints as
`custom_guess`. Upstream Bridge prints a warning when IK fails and carries on, which is how
arms end up somewhere unexpected; here a False return latches the e-stop and raises
`WidowXError`, so the episode stops. After each move the measured pose is checked
(`SafetyFilter.watch`): an arm that went beyond the box or a step plus the tolerance is held
and the e-stop latches with the reason.

`stop()` may be called from any thread while `move()` blocks in another: it latches the
e-stop and sends the measured joints as a non-blocking joint command at once, which replaces
the trajectory in progress; the blocked move then returns, sends nothing more, and raises.

The package is not on PyPI; it comes with the Interbotix ROS workspace. Without it,
`WidowX.connect()` raises `WidowXUnavailable` naming what to install.
"""

from __future__ import annotations

import importlib
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .base import FilteredCommand, Observation, SafetyConfig, SafetyFilter

# Gripper pointing down (tool x-axis along -z), fingers closing along the base y-axis:
# Bridge's DEFAULT_ROTATION, the same as the simulator's.
R_DOWN = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])

INSTALL_HINT = (
    "the real WidowX needs the Interbotix Python API `interbotix_xs_modules`, which is not on PyPI: "
    "install the Interbotix X-Series arm ROS packages (ROS 2: "
    "https://docs.trossenrobotics.com/interbotix_xsarms_docs/ros_interface/ros2/software_setup.html, "
    "ROS 1: .../ros1/software_setup.html), then source the workspace before starting "
    "(e.g. `source /opt/ros/humble/setup.bash && source ~/interbotix_ws/install/setup.bash`)"
)


class WidowXUnavailable(ImportError):
    """interbotix_xs_modules (or its ROS dependencies) cannot be imported."""


class WidowXError(RuntimeError):
    """The arm refused a command (no IK solution, a joint or speed limit); it did not move."""


@dataclass
class WidowXConfig:
    robot_model: str = "wx250s"
    home: tuple[float, float, float] = (0.25, 0.0, 0.16)  # metres, inside the Bridge workspace box
    moving_time: float = 0.2  # seconds per 5 Hz step
    accel_time: float = 0.1
    home_moving_time: float = 2.0
    gripper_delay: float = 0.5  # seconds the gripper is given to open or close
    gripper_pressure: float = 0.5
    safety: SafetyConfig = field(default_factory=SafetyConfig)

    def __post_init__(self) -> None:
        if not self.safety.workspace.contains(np.asarray(self.home)):
            raise ValueError(f"WidowXConfig.home {self.home} must lie inside the safety workspace box")
        if not 0 < self.accel_time <= self.moving_time / 2:
            raise ValueError("WidowXConfig.accel_time must be positive and at most half of moving_time (Interbotix requires it)")


def load_interbotix() -> tuple[str, Any]:
    """('ros2' | 'ros1', the arm module); raises WidowXUnavailable with the install hint."""
    errors = []
    for ros, name in (("ros2", "interbotix_xs_modules.xs_robot.arm"), ("ros1", "interbotix_xs_modules.arm")):
        try:
            return ros, importlib.import_module(name)
        except ImportError as e:  # includes ModuleNotFoundError of rclpy/rospy inside the package
            errors.append(f"{name}: {e}")
    raise WidowXUnavailable(INSTALL_HINT + " (import errors: " + "; ".join(errors) + ")")


def _pose_matrix(p: np.ndarray) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = R_DOWN
    T[:3, 3] = p
    return T


class WidowX:
    """`robot.base.Robot` for the real arm. `camera` is any object with `read() -> (H, W, 3) uint8 RGB`."""

    def __init__(self, config: WidowXConfig | None = None, camera: Any = None, wrist_camera: Any = None) -> None:
        self.config = config or WidowXConfig()
        self.safety = SafetyFilter(self.config.safety)
        self.camera = camera
        self.wrist_camera = wrist_camera
        self.ros: str | None = None
        self.bot: Any = None
        self._shutdown: Callable[[], None] | None = None
        self._target: np.ndarray | None = None
        self._grip_cmd: float | None = None
        self._hold_lock = threading.Lock()  # one hold command at a time (stop() may come from any thread)

    # ------------------------------------------------------------------ lifecycle
    def connect(self) -> None:
        if self.bot is not None:
            return
        self.ros, arm_mod = load_interbotix()
        cfg = self.config
        kwargs = dict(
            robot_model=cfg.robot_model, group_name="arm", gripper_name="gripper",
            moving_time=cfg.moving_time, accel_time=cfg.accel_time, gripper_pressure=cfg.gripper_pressure,
        )
        startup = shutdown = None
        if self.ros == "ros2":
            try:  # Humble and later: an explicit start-up / shut-down of the shared node
                robot_mod = importlib.import_module("interbotix_common_modules.common_robot.robot")
                startup, shutdown = robot_mod.robot_startup, robot_mod.robot_shutdown
            except ImportError:
                pass
        self.bot = arm_mod.InterbotixManipulatorXS(**kwargs)
        if startup is not None:
            startup()
            self._shutdown = shutdown
        elif hasattr(self.bot, "shutdown"):
            self._shutdown = self.bot.shutdown
        self._target = self.ee_pos()

    def disconnect(self) -> None:
        if self.bot is None:
            return
        try:
            if self._shutdown is not None:
                self._shutdown()
        finally:
            self.bot = None
            self._shutdown = None

    # ------------------------------------------------------------------ state
    @property
    def _core(self) -> Any:
        return self.bot.core if self.ros == "ros2" else self.bot.dxl

    def joint_positions(self) -> list[float]:
        """Measured arm joint angles (radians), in the arm group's joint order."""
        core, arm = self._core, self.bot.arm
        mutex = getattr(core, "js_mutex", None)  # the joint-state callback swaps the message under it
        if mutex is not None:
            with mutex:
                pos = list(core.joint_states.position)
        else:
            pos = list(core.joint_states.position)
        return [float(pos[core.js_index_map[n]]) for n in arm.group_info.joint_names]

    def ee_pos(self) -> np.ndarray:
        """Measured end-effector position (forward kinematics of the measured joints), metres."""
        return np.asarray(self.bot.arm.get_ee_pose(), float)[:3, 3].copy()

    def gripper_opening(self) -> float:
        g = self.bot.gripper
        core = self._core
        q = float(core.joint_states.position[g.left_finger_index])
        lo, hi = float(g.left_finger_lower_limit), float(g.left_finger_upper_limit)
        return float(np.clip((q - lo) / (hi - lo), 0.0, 1.0))

    @property
    def target(self) -> np.ndarray:
        return self._need_target().copy()

    def observe(self) -> Observation:
        self._need_bot()
        if self.camera is None:
            raise WidowXError("the WidowX has no camera: pass camera=robot.camera.Camera(...) (the policy needs the image)")
        image = self.camera.read()
        wrist = self.wrist_camera.read() if self.wrist_camera is not None else None
        return Observation(image=image, ee_pos=self.ee_pos(), gripper=self.gripper_opening(), timestamp=time.time(), wrist_image=wrist)

    # ------------------------------------------------------------------ motion
    def move(self, delta: np.ndarray, gripper: float | None = None) -> FilteredCommand:
        self._need_bot()
        before = self.ee_pos()
        cmd = self.safety.filter(self._need_target(), delta, gripper, measured=before)
        if np.any(cmd.delta != 0):
            self._goto(cmd.target, self.config.moving_time)
        if self.safety.watch(before, self.ee_pos()) is not None:
            self._hold()
        self.safety.check()  # an excursion, or a stop() while the arm moved: nothing more is sent
        if cmd.gripper is not None:
            self._set_gripper(cmd.gripper)
        return cmd

    def home(self) -> None:
        """Move to the configured home pose (inside the workspace box), gripper down and open."""
        self._need_bot()
        self.safety.check()
        self._goto(np.asarray(self.config.home, float), self.config.home_moving_time, guess_from_joints=False)
        self._set_gripper(1.0)

    def sleep(self) -> None:
        """Fold into Interbotix's sleep pose (for power-off); the next move starts from there."""
        self._need_bot()
        self.safety.check()
        self.bot.arm.go_to_sleep_pose(moving_time=self.config.home_moving_time, accel_time=self.config.accel_time * 3)
        self._target = self.ee_pos()

    def stop(self) -> None:
        """Latch the e-stop and hold the arm where it is now; returns at once, from any thread."""
        self.safety.estop("stop() called on the WidowX")
        self._hold()

    def _hold(self) -> None:
        """Command the measured joints (non-blocking): replaces any trajectory in progress."""
        bot = self.bot
        if bot is None:
            return
        with self._hold_lock:
            try:
                bot.arm.set_joint_positions(self.joint_positions(), moving_time=self.config.moving_time,
                                            accel_time=self.config.accel_time, blocking=False)
            except Exception:  # stopping must not raise; the latch is what matters
                pass

    # ------------------------------------------------------------------ internals
    def _goto(self, target: np.ndarray, moving_time: float, guess_from_joints: bool = True) -> None:
        guess = self.joint_positions() if guess_from_joints else None
        _theta, ok = self.bot.arm.set_ee_pose_matrix(
            _pose_matrix(target), custom_guess=guess, execute=True,
            moving_time=moving_time, accel_time=min(self.config.accel_time, moving_time / 2), blocking=True,
        )
        if not ok:
            where = ", ".join(f"{v * 100:.1f}" for v in target)
            reason = f"the arm found no joint solution within its limits for ({where}) cm with the gripper down; it did not move"
            self.safety.estop(reason)
            raise WidowXError(reason + " — the e-stop is latched; home or reset the episode")
        self._target = np.asarray(target, float).copy()

    def _set_gripper(self, g: float) -> None:
        want_open = g >= 0.5
        if self._grip_cmd is not None and (self._grip_cmd >= 0.5) == want_open:
            return  # the Interbotix gripper is effort-driven: re-sending the same command only heats it
        grip, delay = self.bot.gripper, self.config.gripper_delay
        if self.ros == "ros2":
            (grip.release if want_open else grip.grasp)(delay)
        else:
            (grip.open if want_open else grip.close)(delay)
        self._grip_cmd = 1.0 if want_open else 0.0

    def _need_bot(self) -> None:
        if self.bot is None:
            raise WidowXError("the WidowX is not connected: call connect() first")

    def _need_target(self) -> np.ndarray:
        self._need_bot()
        assert self._target is not None
        return self._target

    @property
    def gripper_command(self) -> float | None:
        return self._grip_cmd
