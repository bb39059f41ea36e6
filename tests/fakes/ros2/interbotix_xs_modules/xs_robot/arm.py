"""Fake ROS 2 `interbotix_xs_modules.xs_robot.arm` (signatures of the Humble Interbotix API)."""

from tests.fakes import interbotix_core as _c


class InterbotixGripperXSInterface(_c.Gripper):
    def __init__(self, core, gripper_name, gripper_pressure=0.5, gripper_pressure_lower_limit=150, gripper_pressure_upper_limit=350):
        super().__init__(core, gripper_name, gripper_pressure)

    def grasp(self, delay: float = 1.0) -> None:
        _c._record("gripper.grasp", (delay,), {})
        self._move(self.left_finger_lower_limit)

    def release(self, delay: float = 1.0) -> None:
        _c._record("gripper.release", (delay,), {})
        self._move(self.left_finger_upper_limit)


class InterbotixManipulatorXS:
    def __init__(self, robot_model: str, group_name: str = "arm", gripper_name: str = "gripper", robot_name: str = None,
                 moving_time: float = 2.0, accel_time: float = 0.3, gripper_pressure: float = 0.5,
                 gripper_pressure_lower_limit: int = 150, gripper_pressure_upper_limit: int = 350,
                 topic_joint_states: str = "joint_states", logging_level=None, node_name: str = "robot_manipulation",
                 node=None, args=None) -> None:
        _c._record("InterbotixManipulatorXS", (robot_model,), dict(group_name=group_name, gripper_name=gripper_name,
                   moving_time=moving_time, accel_time=accel_time, gripper_pressure=gripper_pressure))
        self.core = _c.Core()
        self.arm = _c.Arm(self.core, robot_model, group_name, moving_time, accel_time)
        if gripper_name is not None:
            self.gripper = InterbotixGripperXSInterface(self.core, gripper_name, gripper_pressure)
        _c.STATE.instances.append(self)
