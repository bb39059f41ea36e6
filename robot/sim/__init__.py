"""The MuJoCo WidowX-250S-like arm in a toy kitchen: `SimRobot`, the tasks and a scripted expert.

    from robot.sim import SimRobot, make_task, ScriptedExpert
    sim = SimRobot()
    task = make_task("pick_up", seed=3)          # parameters (which object) drawn from the seed
    sim.reset(seed=3, task=task)                 # same seed + task -> same episode, bit for bit
    expert = ScriptedExpert(sim, task)
    for i, phrase in enumerate(expert.subtasks()):
        seg = expert.plan_segment(i)             # planned from the current ground truth
        for delta, grip in zip(seg.deltas, seg.gripper):
            sim.move(delta, grip)                # 5 Hz step through robot.base.SafetyFilter
        print(phrase, task.subtask_done(sim, i))
    print(task.success(sim), task.instruction("es"))

Importing this package chooses an offscreen GL backend (MUJOCO_GL=egl, else osmesa)
before mujoco is imported; see robot/sim/_gl.py.
"""

from . import _gl  # noqa: F401  (must come before anything imports mujoco)
from .expert import EpisodeResult, ScriptedExpert, Segment, run_expert
from .robot import SimConfig, SimRobot, StepRecord
from .scene import CONTAINERS, FLAGS, PICKABLES
from .tasks import TASKS, PickAndPlace, PickPlaceLift, PickUp, PickUpSemantic, Task, languages, make_task

__all__ = [
    "SimRobot",
    "SimConfig",
    "StepRecord",
    "Task",
    "PickUp",
    "PickAndPlace",
    "PickPlaceLift",
    "PickUpSemantic",
    "TASKS",
    "make_task",
    "languages",
    "ScriptedExpert",
    "Segment",
    "EpisodeResult",
    "run_expert",
    "PICKABLES",
    "CONTAINERS",
    "FLAGS",
]
