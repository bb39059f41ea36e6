"""Fake `interbotix_common_modules.common_robot.robot` (ROS 2 Humble and later)."""

from typing import Optional

from tests.fakes import interbotix_core as _c


def robot_startup(node: Optional[object] = None, node_name: str = "interbotix_robot_manipulation", namespace: Optional[str] = None) -> None:
    _c._record("robot_startup", (), dict(node=node, node_name=node_name, namespace=namespace))


def robot_shutdown(node: Optional[object] = None) -> None:
    _c._record("robot_shutdown", (), dict(node=node))
