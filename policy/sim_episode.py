"""One simulated episode's wiring: the table set for the task, the scripted expert, the ground-truth validator.

Every entry point that runs an episode in the simulation — the web demo (`app.build`), the
CLI (`python -m policy`), the benchmarks and the tests — builds it here, so for the same
seed and task they all write the same text:

    from policy.sim_episode import sim_episode
    ep = sim_episode(robot, task, seed=3)                  # reset the table for `task` with seed 3
    loop = ClosedLoop(robot, ep.backend, ep.validator, LoopConfig())
    events = list(loop.run(ep.task.instruction("es"), seed=3))

`robot` is the very handle the loop drives (a `SimRobot`, or the demo's `SharedRobot`
around one): the expert plans from it and the validator judges it. The expert is told the
*commanded* gripper (`robot.gripper_command`), not the measured opening: fingers closed on
a wide object measure partly open, and the action language speaks commands — the same
source `training` verbalizes from (see ARCHITECTURE.md, Data).

This module is wiring, not library: it is the one place in `policy` allowed to import
`robot.sim` (the import contracts in tests/test_layering.py say so).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from policy.backends import Backend
from policy.backends.scripted import ScriptedBackend
from policy.language import ActionCodec
from policy.validators import SimValidator, Validator


@dataclass(frozen=True)
class SimEpisode:
    """What one simulated episode runs with (the robot is the caller's)."""

    task: Any  # robot.sim.tasks.Task: instruction(lang), subtasks, subtask_done, success
    backend: Backend
    validator: Validator
    prepared: str = ""  # what was done to the table before it (episodes in a row), e.g. "set the banana down ..., went home"


def arrange_scene(robot: Any, task: Any, seed: int | None) -> str:
    """Set the table for `task`; returns what was done to the arm before the episode ("" after a reset).

    `seed` given: a fresh episode from that seed (`robot.reset(seed, task)`), as the CLI does
    for each episode. `seed=None`: keep the table the person is looking at when it already has
    the task's arrangement (the demo between Runs), else re-arrange it with the robot's seed.

    Episodes in a row start from the state the expert (and the training data) start from: what the
    gripper holds is set down where it lay when the last episode began (or the nearest free spot),
    the gripper opens and the arm goes home, through `robot.move` (filtered, paced on the camera);
    then the e-stop is clear and the step history starts afresh (`SimRobot.begin_episode`).
    """
    current = robot.task
    if seed is not None or current is None or current.layout != task.layout:
        robot.reset(robot.seed if seed is None else seed, task=task)
        return ""
    robot.set_task(task)
    robot.safety.reset()  # a new episode re-arms the arm, as reset() does
    deltas, grips, said = robot.next_episode_plan()
    for delta, grip in zip(deltas, grips):
        robot.move(delta, float(grip))
    call = getattr(robot, "call", None)  # the demo's SharedRobot: under its mutex
    if call is not None:
        call(lambda r: r.begin_episode())
    else:
        robot.begin_episode()
    return said


def sim_episode(
    robot: Any,
    task: Any,
    *,
    seed: int | None = None,
    backend: Backend | None = None,
    validator: Validator | None = None,
    chars_per_s: float = 0.0,
    codec: ActionCodec | None = None,
) -> SimEpisode:
    """Arrange the scene (see `arrange_scene`), then the episode's backend and validator.

    `backend=None`: the scripted expert speaking ground truth at `chars_per_s` (0 = instant),
    its block spelled by `codec`; `validator=None`: the simulator's ground truth per subtask.
    A model backend or another validator is passed through unchanged.
    """
    from robot.sim.expert import ScriptedExpert

    prepared = arrange_scene(robot, task, seed)
    if backend is None:
        backend = ScriptedBackend(
            ScriptedExpert(robot, task), chars_per_s=chars_per_s, codec=codec,
            gripper_command=lambda: robot.gripper_command,
        )
    if validator is None:
        # a model may plan more subtasks than the task has: for_task judges those by task success
        validator = SimValidator.for_task(task, robot)
    return SimEpisode(task, backend, validator, prepared)
