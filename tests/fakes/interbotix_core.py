"""A fake Interbotix X-Series arm shared by the ROS 1 and ROS 2 fake packages.

It reproduces the public signatures and return types of `interbotix_xs_modules`
(InterbotixManipulatorXS with .arm and .gripper, core.joint_states / js_index_map,
arm.group_info) and records every call in `CALLS` as (name, args, kwargs). Its "IK"
accepts any target within the wx250s reach with a proper rotation matrix and moves the
measured pose there exactly; `FAIL_NEXT` makes the next set_ee_pose_matrix return
(theta, False) as the real one does for an unreachable pose or a broken limit.
"""

from __future__ import annotations

import math
import threading
from types import SimpleNamespace

import numpy as np

CALLS: list[tuple[str, tuple, dict]] = []
STATE = SimpleNamespace(fail_next=False, instances=[])

JOINTS = ["waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate"]
ALL_JOINTS = JOINTS + ["gripper", "left_finger", "right_finger"]
SHOULDER = np.array([0.0, 0.0, 0.11065])
REACH = 0.65
M_HOME = np.array([[1, 0, 0, 0.458325], [0, 1, 0, 0], [0, 0, 1, 0.36065], [0, 0, 0, 1.0]])
SLEEP_POSE = np.array([[1, 0, 0, 0.11], [0, 1, 0, 0], [0, 0, 1, 0.09], [0, 0, 0, 1.0]])


def reset() -> None:
    CALLS.clear()
    STATE.fail_next = False
    STATE.instances.clear()


def _record(name, args, kwargs):
    CALLS.append((name, tuple(args), dict(kwargs)))


class Core:
    def __init__(self) -> None:
        self.joint_states = SimpleNamespace(name=list(ALL_JOINTS), position=[0.0] * 6 + [0.0, 0.037, -0.037])
        self.js_index_map = {n: i for i, n in enumerate(ALL_JOINTS)}
        self.js_mutex = threading.Lock()


class Arm:
    def __init__(self, core: Core, robot_model: str, group_name: str, moving_time: float, accel_time: float) -> None:
        self.core = core
        self.robot_model = robot_model
        self.group_name = group_name
        self.moving_time, self.accel_time = moving_time, accel_time
        self.group_info = SimpleNamespace(
            joint_names=list(JOINTS), num_joints=6, profile_type="time", mode="position",
            joint_lower_limits=[-math.pi, -1.885, -2.147, -math.pi, -1.745, -math.pi],
            joint_upper_limits=[math.pi, 1.99, 1.605, math.pi, 2.147, math.pi],
            joint_velocity_limits=[math.pi] * 6, joint_sleep_positions=[0.0, -1.8, 1.55, 0.0, 0.8, 0.0],
        )
        self.T_sb = M_HOME.copy()
        self.joint_commands = [0.0] * 6

    def _set_joints(self, theta) -> None:
        self.joint_commands = [float(t) for t in theta]
        self.core.joint_states.position[:6] = list(self.joint_commands)

    def set_ee_pose_matrix(self, T_sd, custom_guess=None, execute=True, moving_time=None, accel_time=None, blocking=True):
        _record("set_ee_pose_matrix", (np.array(T_sd),), dict(custom_guess=None if custom_guess is None else list(custom_guess),
                execute=execute, moving_time=moving_time, accel_time=accel_time, blocking=blocking))
        T = np.asarray(T_sd, float)
        p, R = T[:3, 3], T[:3, :3]
        theta = np.array(custom_guess if custom_guess is not None else [0.0] * 6, float)
        theta[0] = math.atan2(p[1], p[0])
        ok = (not STATE.fail_next) and np.linalg.norm(p - SHOULDER) <= REACH and np.allclose(R @ R.T, np.eye(3), atol=1e-6)
        STATE.fail_next = False
        if ok and execute:
            self._set_joints(theta)
            self.T_sb = T.copy()
        return theta, bool(ok)

    def set_ee_pose_components(self, x=0, y=0, z=0, roll=0, pitch=0, yaw=None, custom_guess=None, execute=True, moving_time=None, accel_time=None, blocking=True):
        _record("set_ee_pose_components", (), dict(x=x, y=y, z=z, roll=roll, pitch=pitch, yaw=yaw, custom_guess=custom_guess))
        raise AssertionError("the adapter sends full pose matrices")

    def set_joint_positions(self, joint_positions, moving_time=None, accel_time=None, blocking=True):
        _record("set_joint_positions", (list(joint_positions),), dict(moving_time=moving_time, accel_time=accel_time, blocking=blocking))
        self._set_joints(joint_positions)
        return True

    def go_to_home_pose(self, moving_time=None, accel_time=None, blocking=True):
        _record("go_to_home_pose", (), dict(moving_time=moving_time, accel_time=accel_time, blocking=blocking))
        self._set_joints([0.0] * 6)
        self.T_sb = M_HOME.copy()

    def go_to_sleep_pose(self, moving_time=None, accel_time=None, blocking=True):
        _record("go_to_sleep_pose", (), dict(moving_time=moving_time, accel_time=accel_time, blocking=blocking))
        self._set_joints(self.group_info.joint_sleep_positions)
        self.T_sb = SLEEP_POSE.copy()

    def get_ee_pose(self):
        return np.array(self.T_sb)  # the real one: FK of the measured joints, a 4x4 ndarray

    def get_joint_commands(self):
        return list(self.joint_commands)


class Gripper:
    def __init__(self, core: Core, gripper_name: str, gripper_pressure: float) -> None:
        self.core = core
        self.gripper_name = gripper_name
        self.gripper_pressure = gripper_pressure
        self.left_finger_index = core.js_index_map["left_finger"]
        self.left_finger_lower_limit = 0.015
        self.left_finger_upper_limit = 0.037

    def _move(self, opening: float) -> None:
        self.core.joint_states.position[self.left_finger_index] = opening
        self.core.joint_states.position[self.left_finger_index + 1] = -opening

    def set_pressure(self, pressure: float) -> None:
        _record("gripper.set_pressure", (pressure,), {})
