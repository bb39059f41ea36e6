"""Fake ROS 1 `interbotix_xs_modules.arm` (signatures of the noetic Interbotix API)."""

from tests.fakes import interbotix_core as _c


class InterbotixGripperXSInterface(_c.Gripper):
    def __init__(self, core, gripper_name, gripper_pressure=0.5, gripper_pressure_lower_limit=150, gripper_pressure_upper_limit=350):
        super().__init__(core, gripper_name, gripper_pressure)

    def open(self, delay=1.0):
        _c._record("gripper.open", (delay,), {})
        self._move(self.left_finger_upper_limit)

    def close(self, delay=1.0):
        _c._record("gripper.close", (delay,), {})
        self._move(self.left_finger_lower_limit)


class InterbotixManipulatorXS(object):
    def __init__(self, robot_model, group_name="arm", gripper_name="gripper", robot_name=None, moving_time=2.0, accel_time=0.3,
                 use_gripper=True, gripper_pressure=0.5, gripper_pressure_lower_limit=150, gripper_pressure_upper_limit=350, init_node=True):
        _c._record("InterbotixManipulatorXS", (robot_model,), dict(group_name=group_name, gripper_name=gripper_name,
                   moving_time=moving_time, accel_time=accel_time, gripper_pressure=gripper_pressure, init_node=init_node))
        self.dxl = _c.Core()
        self.arm = _c.Arm(self.dxl, robot_model, group_name, moving_time, accel_time)
        if gripper_name is not None:
            self.gripper = InterbotixGripperXSInterface(self.dxl, gripper_name, gripper_pressure)
        _c.STATE.instances.append(self)
