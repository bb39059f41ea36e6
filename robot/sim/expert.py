"""A scripted expert that produces Bridge-like 5 Hz end-effector deltas from ground truth.

Each subtask (`Phase`) becomes a `Segment`: deltas of at most `max_step` (2.5 cm, like
the 1–3 cm steps of BridgeData V2 teleoperation) and a gripper target per step. A segment
is planned from the simulator's *current* state, so after a failed attempt the same
subtask can be planned again from wherever the arm and object ended up.

Optional noise jitters each step (Gaussian, `noise` metres per axis) while the segment's
net displacement stays exact (the jitter is made zero-sum over the segment), so noisy
demonstrations still end where they should.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .scene import OBJECTS, PAD_TIP, POT_WALL_HEIGHT
from .tasks import Phase, Task

if TYPE_CHECKING:
    from .robot import SimRobot

SAFE_Z = 0.09  # travel height for horizontal moves with an empty gripper (clears pot walls)
CARRY_Z = 0.13  # travel height with an object (its bottom clears the pot walls)
GRASP_Z_MIN = PAD_TIP + 0.004  # lowest ee height: finger tips 4 mm above the table
PRE_GRASP = 0.06  # approach the object vertically over the last 6 cm


@dataclass
class Segment:
    subtask: str  # e.g. "grasp the carrot"
    deltas: np.ndarray  # (T, 3) metres, base frame
    gripper: np.ndarray  # (T,) target gripper per step, 1 = open, 0 = closed

    def __post_init__(self) -> None:
        self.deltas = np.asarray(self.deltas, float).reshape(-1, 3)
        self.gripper = np.asarray(self.gripper, float).reshape(-1)
        if len(self.deltas) != len(self.gripper):
            raise ValueError(f"segment has {len(self.deltas)} deltas but {len(self.gripper)} gripper targets")

    def __len__(self) -> int:
        return len(self.deltas)


def _line(p0: np.ndarray, p1: np.ndarray, max_step: float) -> np.ndarray:
    d = np.asarray(p1, float) - np.asarray(p0, float)
    dist = float(np.linalg.norm(d))
    if dist < 1e-4:
        return np.zeros((0, 3))
    n = int(np.ceil(dist / max_step - 1e-9))
    return np.repeat((d / n)[None], n, axis=0)


class ScriptedExpert:
    """Plans each subtask of `task` from the simulator's ground truth."""

    def __init__(self, sim: "SimRobot", task: Task, noise: float = 0.0, seed: int = 0, max_step: float = 0.025) -> None:
        if noise < 0:
            raise ValueError(f"noise must be a non-negative number of metres, got {noise}")
        if not 0 < max_step <= sim.safety.config.max_step:
            raise ValueError(f"max_step must be in (0, {sim.safety.config.max_step}] metres, got {max_step}")
        self.sim = sim
        self.task = task
        self.noise = float(noise)
        self.max_step = float(max_step)
        self._rng = np.random.default_rng([int(seed), 11])

    @property
    def phases(self) -> list[Phase]:
        # asked each time: a semantic task's object depends on the episode's layout
        return self.task.phases(self.sim)

    def subtasks(self) -> list[str]:
        return [p.phrase for p in self.phases]

    def plan_segment(self, index: int) -> Segment:
        phases = self.phases
        if not 0 <= index < len(phases):
            raise IndexError(f"subtask index {index} out of range: the episode has {len(phases)} subtasks")
        phase = phases[index]
        plan = getattr(self, f"_plan_{phase.kind}")
        deltas, gripper = plan(phase)
        return Segment(phase.phrase, self._jitter(deltas), gripper)

    # ------------------------------------------------------------------ per phase
    def _grasp_point(self, obj: str) -> np.ndarray:
        p = self.sim.object_positions()[obj].copy()
        p[2] = max(float(p[2]), GRASP_Z_MIN)
        return p

    def _path(self, waypoints: list[np.ndarray], steps: list[float] | None = None) -> np.ndarray:
        out = []
        for i in range(1, len(waypoints)):
            out.append(_line(waypoints[i - 1], waypoints[i], (steps[i - 1] if steps else self.max_step)))
        return np.concatenate(out) if out else np.zeros((0, 3))

    def _plan_reach(self, ph: Phase):
        start = self.sim.target
        goal = self._grasp_point(ph.object)
        above = goal + [0.0, 0.0, PRE_GRASP]
        wps = [start]
        far = float(np.hypot(*(start[:2] - goal[:2]))) > 0.01
        if far and start[2] < SAFE_Z:
            wps.append(np.array([start[0], start[1], SAFE_Z]))
        if far:
            wps.append(np.array([above[0], above[1], max(above[2], min(wps[-1][2], CARRY_Z))]))
        wps.append(above if far else np.array([goal[0], goal[1], max(start[2], goal[2])]))
        wps.append(goal)
        # slower over the last few centimetres, as teleoperators are
        steps = [self.max_step] * (len(wps) - 2) + [0.6 * self.max_step]
        d = self._path(wps, steps)
        if len(d) == 0:
            d = np.zeros((1, 3))
        return d, np.ones(len(d))

    def _plan_grasp(self, ph: Phase):
        # Close in place; three steps (0.6 s) give the fingers time to pinch.
        return np.zeros((3, 3)), np.zeros(3)

    def _plan_lift(self, ph: Phase):
        start = self.sim.target
        goal_z = max(float(start[2]), OBJECTS[ph.object].rest_z + 0.10)
        d = self._path([start, np.array([start[0], start[1], goal_z])])
        if len(d) == 0:
            d = np.zeros((1, 3))
        return d, np.zeros(len(d))

    def _plan_move_above(self, ph: Phase):
        start = self.sim.target
        obj = self.sim.object_positions()[ph.object]
        tgt = self.sim.object_positions()[ph.target]
        # move so the *object* ends over the target's centre (it may sit off-centre in the fingers)
        offset = obj[:2] - start[:2]
        goal_xy = tgt[:2] - offset
        z = max(float(start[2]), CARRY_Z)
        d = self._path([start, np.array([start[0], start[1], z]), np.array([goal_xy[0], goal_xy[1], z])])
        if len(d) == 0:
            d = np.zeros((1, 3))
        return d, np.zeros(len(d))

    def _plan_release(self, ph: Phase):
        start = self.sim.target
        obj_z = float(self.sim.object_positions()[ph.object][2])
        spec, tgt = OBJECTS[ph.object], OBJECTS[ph.target]
        # lower until the object's underside is just above the surface (above the rim for the pot)
        surface = POT_WALL_HEIGHT if ph.target == "pot" else tgt.top_z
        clearance = 0.012 if ph.target == "pot" else 0.008
        drop = obj_z - (surface + spec.rest_z + clearance)
        low = np.array([start[0], start[1], max(float(start[2]) - max(drop, 0.0), GRASP_Z_MIN)])
        down = self._path([start, low], [0.6 * self.max_step])
        back_up = self._path([low, low + [0.0, 0.0, 0.05]])
        d = np.concatenate([down, np.zeros((2, 3)), back_up])
        g = np.concatenate([np.zeros(len(down)), np.ones(2 + len(back_up))])
        return d, g

    # ------------------------------------------------------------------ noise
    def _jitter(self, deltas: np.ndarray) -> np.ndarray:
        if self.noise <= 0 or len(deltas) < 2:
            return deltas
        moving = np.linalg.norm(deltas, axis=1) > 0  # leave the gripper-only pauses still
        if moving.sum() < 2:
            return deltas
        j = self._rng.normal(0.0, self.noise, size=deltas.shape)
        j[moving] -= j[moving].mean(axis=0)  # zero-sum: the net displacement is unchanged
        j[~moving] = 0.0
        return deltas + j


@dataclass
class EpisodeResult:
    success: bool
    steps: int
    subtasks: list[str]
    subtask_done: list[bool]


def run_expert(sim: "SimRobot", task: Task, noise: float = 0.0, seed: int = 0, on_step=None) -> EpisodeResult:
    """Run the expert through every subtask once; `on_step(segment, t, filtered_command)` after each move."""
    expert = ScriptedExpert(sim, task, noise=noise, seed=seed)
    done = []
    steps = 0
    for i, name in enumerate(expert.subtasks()):
        seg = expert.plan_segment(i)
        for t in range(len(seg)):
            cmd = sim.move(seg.deltas[t], seg.gripper[t])
            steps += 1
            if on_step is not None:
                on_step(seg, t, cmd)
        done.append(task.subtask_done(sim, i))
    return EpisodeResult(success=task.success(sim), steps=steps, subtasks=expert.subtasks(), subtask_done=done)
