"""The evaluation tasks (after the paper's), each with success checks from simulator state.

A task is a small frozen dataclass naming what to move where. Its subtasks are a list
of `Phase`s (reach / grasp / lift / move_above / release) that the scripted expert
turns into motion and that `subtask_done` checks from ground truth:

- pick_up:          reach, grasp, lift.  Success: the object is held ≥ 5 cm above where it rested.
- pick_and_place:   ... then move above the target and release.  Success: the object rests
                    on/in the target, not held, nearly still.
- pick_place_lift:  pick_and_place, then reach, grasp and lift it again.  Success: it was
                    released on the target at some step (the robot's history) and is held
                    lifted at the end.
- pick_up_semantic: pick up the item lying just beyond (+x, "above" in the camera image) a
                    named flag card, with the other two items beyond the other two cards.
                    Success: that item is lifted and held, no other item is lifted.

Instructions come from assets/instructions.json in English, Spanish, Mandarin and Hindi.
"""

from __future__ import annotations

import abc
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from .scene import CONTAINERS, FLAGS, OBJECTS, PICKABLES

if TYPE_CHECKING:
    from .robot import SimRobot

INSTRUCTIONS_PATH = Path(__file__).resolve().parents[2] / "assets" / "instructions.json"
LIFT_HEIGHT = 0.05  # metres above the object's resting height on the table that counts as lifted
REACH_TOL_XY = 0.02  # ee within this of the object's grasp point (xy) counts as reached
REACH_TOL_Z = 0.025
SETTLED_SPEED = 0.05  # m/s: an object slower than this is resting


@lru_cache(maxsize=1)
def instructions() -> dict:
    try:
        return json.loads(INSTRUCTIONS_PATH.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"the instruction templates are missing: {INSTRUCTIONS_PATH} (restore assets/ from the repository)") from None


def languages() -> list[str]:
    return list(instructions()["languages"])


@dataclass(frozen=True)
class Phase:
    """One subtask: kind in reach | grasp | lift | move_above | release."""

    kind: str
    object: str
    target: str | None = None

    @property
    def phrase(self) -> str:
        o = f"the {self.object}"
        return {
            "reach": f"reach for {o}",
            "grasp": f"grasp {o}",
            "lift": f"lift {o}",
            "move_above": f"move {o} above the {self.target}",
            "release": f"release {o}",
        }[self.kind]


# --------------------------------------------------------------------------- checks


def is_held(sim: "SimRobot", obj: str) -> bool:
    """Held: welded by the grasp assist, or (assist off) pinched by both finger pads with the gripper closed."""
    if sim.held == obj:
        return True
    return sim.gripper_command < 0.5 and all(sim.touching(obj))


def is_lifted(sim: "SimRobot", obj: str) -> bool:
    return is_held(sim, obj) and float(sim.object_positions()[obj][2]) >= OBJECTS[obj].rest_z + LIFT_HEIGHT


def _on_target_xyz(pos: np.ndarray, target_pos: np.ndarray, target: str) -> bool:
    spec = OBJECTS[target]
    dxy = float(np.hypot(*(pos[:2] - target_pos[:2])))
    # resting on/in it: inside the rim and low (an object lying on it, not hovering over it)
    return dxy <= spec.inner_radius and float(pos[2]) <= spec.top_z + 0.045


def is_on_target(sim: "SimRobot", obj: str, target: str) -> bool:
    pos = sim.object_positions()
    return (
        not is_held(sim, obj)
        and _on_target_xyz(pos[obj], pos[target], target)
        and sim.object_velocity(obj) < SETTLED_SPEED
    )


def reached(sim: "SimRobot", obj: str) -> bool:
    ee, p = sim.ee_pos(), sim.object_positions()[obj]
    return (
        float(np.hypot(*(ee[:2] - p[:2]))) <= REACH_TOL_XY
        and abs(float(ee[2] - p[2])) <= REACH_TOL_Z
        and (sim.gripper_command >= 0.5 or is_held(sim, obj))
    )


# --------------------------------------------------------------------------- tasks


@dataclass(frozen=True)
class Task(abc.ABC):
    """A simulated task: its instruction in every language, its phases, and checks from sim state."""

    name: ClassVar[str] = ""
    layout: ClassVar[str] = "free"

    def instruction(self, lang: str = "en") -> str:
        table = instructions()
        if lang not in table["languages"]:
            raise ValueError(f"no instructions in language {lang!r}; choose one of {', '.join(table['languages'])}")
        return table["templates"][self.name][lang].format(**self._words(lang))

    @abc.abstractmethod
    def _words(self, lang: str) -> dict[str, str]:
        """See the subclasses."""

    @abc.abstractmethod
    def phases(self, sim: "SimRobot") -> list[Phase]:
        """See the subclasses."""

    def subtasks(self, sim: "SimRobot") -> list[str]:
        return [p.phrase for p in self.phases(sim)]

    @abc.abstractmethod
    def success(self, sim: "SimRobot") -> bool:
        """See the subclasses."""

    def subtask_done(self, sim: "SimRobot", index: int) -> bool:
        """Ground truth: is subtask `index` of this episode accomplished in the current state?"""
        phases = self.phases(sim)
        if not 0 <= index < len(phases):
            raise IndexError(f"subtask index {index} out of range: this task has {len(phases)} subtasks")
        p = phases[index]
        if p.kind == "reach":
            return reached(sim, p.object)
        if p.kind == "grasp":
            return is_held(sim, p.object)
        if p.kind == "lift":
            return is_lifted(sim, p.object)
        if p.kind == "move_above":
            pos = sim.object_positions()
            return is_held(sim, p.object) and float(np.hypot(*(pos[p.object][:2] - pos[p.target][:2]))) <= OBJECTS[p.target].inner_radius
        if p.kind == "release":
            return is_on_target(sim, p.object, p.target)
        raise AssertionError(p.kind)


def _check_object(obj: str) -> None:
    if obj not in PICKABLES:
        raise ValueError(f"unknown object {obj!r}; choose one of {', '.join(PICKABLES)}")


def _check_target(target: str) -> None:
    if target not in CONTAINERS:
        raise ValueError(f"unknown target {target!r}; choose one of {', '.join(CONTAINERS)}")


@dataclass(frozen=True)
class PickUp(Task):
    object: str = "carrot"
    name: ClassVar[str] = "pick_up"

    def __post_init__(self) -> None:
        _check_object(self.object)

    def _words(self, lang):
        return {"object": instructions()["objects"][self.object][lang]}

    def phases(self, sim):
        return [Phase("reach", self.object), Phase("grasp", self.object), Phase("lift", self.object)]

    def success(self, sim):
        return is_lifted(sim, self.object)


@dataclass(frozen=True)
class PickAndPlace(Task):
    object: str = "carrot"
    target: str = "plate"
    name: ClassVar[str] = "pick_and_place"

    def __post_init__(self) -> None:
        _check_object(self.object)
        _check_target(self.target)

    def _words(self, lang):
        t = instructions()
        return {"object": t["objects"][self.object][lang], "target": t["targets"][self.target][lang]}

    def phases(self, sim):
        o, t = self.object, self.target
        return [Phase("reach", o), Phase("grasp", o), Phase("lift", o), Phase("move_above", o, t), Phase("release", o, t)]

    def success(self, sim):
        return is_on_target(sim, self.object, self.target)


@dataclass(frozen=True)
class PickPlaceLift(PickAndPlace):
    name: ClassVar[str] = "pick_place_lift"

    def phases(self, sim):
        o = self.object
        return super().phases(sim) + [Phase("reach", o), Phase("grasp", o), Phase("lift", o)]

    def success(self, sim):
        # placed: some recorded step had the object released, resting on the target
        placed = any(
            r.held != self.object and r.gripper_cmd >= 0.5 and _on_target_xyz(r.positions[self.object], sim.object_positions()[self.target], self.target)
            for r in sim.history
        )
        return placed and is_lifted(sim, self.object)


@dataclass(frozen=True)
class PickUpSemantic(Task):
    flag: str = "japan"
    name: ClassVar[str] = "pick_up_semantic"
    layout: ClassVar[str] = "flags"

    def __post_init__(self) -> None:
        if self.flag not in FLAGS:
            raise ValueError(f"unknown flag {self.flag!r}; choose one of {', '.join(FLAGS)}")

    def _words(self, lang):
        return {"flag": instructions()["flags"][self.flag][lang]}

    def target_object(self, sim: "SimRobot") -> str:
        """The pickable that lay just beyond (+x) the named card when the episode started."""
        card = sim.initial_positions[self.flag]
        def score(obj: str) -> float:
            p = sim.initial_positions[obj]
            return abs(p[1] - card[1]) + max(0.0, card[0] - p[0]) * 10  # beyond the card, same column
        return min(PICKABLES, key=score)

    def phases(self, sim):
        o = self.target_object(sim)
        return [Phase("reach", o), Phase("grasp", o), Phase("lift", o)]

    def success(self, sim):
        o = self.target_object(sim)
        others_down = all(not is_lifted(sim, p) for p in PICKABLES if p != o)
        return is_lifted(sim, o) and others_down


TASKS: dict[str, type[Task]] = {t.name: t for t in (PickUp, PickPlaceLift, PickAndPlace, PickUpSemantic)}


def make_task(name: str, seed: int = 0, **params) -> Task:
    """A task by name; parameters not given are drawn from `seed` (e.g. which object, which target)."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}")
    # A separate stream from the layout's, so the same seed picks params and places objects independently.
    rng = np.random.default_rng([int(seed), 7])
    cls = TASKS[name]
    if cls is PickUpSemantic:
        params.setdefault("flag", str(rng.choice(FLAGS)))
    else:
        params.setdefault("object", str(rng.choice(PICKABLES)))
        if issubclass(cls, PickAndPlace):
            params.setdefault("target", str(rng.choice(CONTAINERS)))
    return cls(**params)
