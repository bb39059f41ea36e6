"""The rules labeler: deterministic subtask phrases from the instruction, plans from the motion.

The instruction is parsed into an object and (optionally) a target and a relation:

    "put the carrot on the plate"              -> object "the carrot", target "the plate", "on"
    "pick up the spoon" / "pick the spoon up"  -> object "the spoon"
    "move the pot to the left burner"          -> object "the pot", target "the left burner", "to"
    "take the corn out of the pot"             -> object "the corn", target "the pot", "out of"
    "open the drawer" / "close the microwave"  -> object "the drawer" (articulated)
    "sweep the beans into the pile", "flip the pot upright", "fold the cloth", ...

Each segment phase (training/segment.py) then gets a phrase: reach for X, grasp X,
move X to Y / lift X, place X on Y / release X, move the arm away. Instructions the
patterns do not recognise fall back to generic phrases ("grasp the object", ...) and
the labeling is marked `generic` (counted in the summary and the card).
The plan is always `policy.language.plan_phrase` of the segment's true displacement.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from policy.language import plan_phrase
from training.formats.episode import Episode
from training.labelers.base import LabeledSegment, Labeling
from training.segment import Segment, SegmentParams, segment_episode

__all__ = ["RulesLabeler", "parse_instruction", "parse_instructions", "Task", "segment_phrases"]

_PREPS = r"into|onto|inside|in|on top of|on|to the (?:left|right) of|to|towards|toward|next to|near|beside|under|over|at|out of|off of|off|from"
_PLACE_VERBS = r"put|place|set|move|transfer|drop|stack|lay|position|bring|relocate|take|slide|push|pull|sweep|flip|turn|knock|insert"
_PICK_VERBS = r"pick up|pick|grab|grasp|take|lift|get|remove|retrieve"
_ARTIC = r"open|close|shut"

_RE_PICK_PLACE = re.compile(
    rf"^(?:(?:{_PICK_VERBS})(?: up)? )?(?P<obj>.+?)(?: up)? and (?:{_PLACE_VERBS}|put) (?:it |them )?(?P<prep>{_PREPS}) (?P<tgt>.+)$", re.I
)
_RE_PLACE = re.compile(rf"^(?P<verb>{_PLACE_VERBS}|{_PICK_VERBS})(?: up)? (?P<obj>.+?) (?P<prep>{_PREPS}) (?P<tgt>.+)$", re.I)
_RE_PICK = re.compile(rf"^(?P<verb>{_PICK_VERBS})(?: up)? (?P<obj>.+?)(?: up)?(?: again)?(?: and (?:lift|raise|hold) (?:it|them)(?: up)?)?$", re.I)
_RE_ARTIC = re.compile(rf"^(?P<verb>{_ARTIC}) (?P<obj>.+?)$", re.I)
_RE_OTHER = re.compile(r"^(?P<verb>sweep|wipe|fold|unfold|flip|push|turn|rotate|stack|knock over|press|slide) (?P<obj>.+?)(?: (?P<prep>" + _PREPS + r") (?P<tgt>.+))?$", re.I)
_CLAUSE_SPLIT = re.compile(r",? (?:and )?then |; |, and then ", re.I)


@dataclass(frozen=True)
class Task:
    kind: str  # pick_place | pick | articulated | other | generic
    verb: str
    obj: str
    target: str | None = None
    prep: str | None = None


def _clean(s: str) -> str:
    s = " ".join(s.replace("\u2019", "'").split())
    return re.sub(r"[.!?]+$", "", s).strip(" ,")


_ARTICLE = re.compile(r"^(the|a|an|this|that|these|those|some|its|their|his|her|my|your|\d+)\b", re.I)


def _np(s: str) -> str:
    """Give a bare noun phrase an article ('carrot' -> 'the carrot'); case is kept except the article's."""
    s = s.strip()
    if m := _ARTICLE.match(s):
        return m.group(1).lower() + s[m.end() :]
    return "the " + s


def _task(s: str) -> Task:
    s = re.sub(r"^(please |can you |could you |robot,? |now |and )+", "", s, flags=re.I)
    if m := _RE_PICK_PLACE.match(s):
        return Task("pick_place", "put", _np(m["obj"]), _np(m["tgt"]), m["prep"].lower())
    if m := _RE_ARTIC.match(s):
        return Task("articulated", m["verb"].lower(), _np(m["obj"]))
    if (m := _RE_OTHER.match(s)) and not (
        m["verb"].lower() in ("stack", "slide", "push") and m["tgt"] and m["prep"].lower() in ("on", "onto", "on top of", "into", "in")
    ):
        tgt = _np(m["tgt"]) if m["tgt"] else None
        return Task("other", m["verb"].lower(), _np(m["obj"]), tgt, m["prep"].lower() if m["prep"] else None)
    if m := _RE_PLACE.match(s):
        verb, prep = m["verb"].lower(), m["prep"].lower()
        if verb in ("pick up", "pick", "grab", "grasp", "lift", "get") and prep not in ("out of", "from", "off", "off of"):
            verb = "put"
        return Task("pick_place", verb, _np(m["obj"]), _np(m["tgt"]), prep)
    if m := _RE_PICK.match(s):
        return Task("pick", m["verb"].lower(), _np(m["obj"]))
    return Task("generic", "", "the object")


def parse_instructions(instruction: str) -> list[Task]:
    """One Task per clause ("put X on Y, then pick it up again" -> two); 'it'/'them' refer to the previous object."""
    tasks: list[Task] = []
    for clause in _CLAUSE_SPLIT.split(_clean(instruction)):
        if not clause.strip():
            continue
        t = _task(clause.strip())
        if tasks and t.obj.lower() in ("the it", "the them"):
            t = Task(t.kind, t.verb, tasks[-1].obj, t.target, t.prep)
        tasks.append(t)
    return tasks or [Task("generic", "", "the object")]


def parse_instruction(instruction: str) -> Task:
    """The task of the instruction's first clause."""
    return parse_instructions(instruction)[0]


def _place_phrase(t: Task) -> str:
    if t.prep in ("out of", "from", "off", "off of"):
        return f"put down {t.obj}"
    return f"place {t.obj} {t.prep} {t.target}"


def _transport_phrase(t: Task) -> str:
    if t.target is None:
        return f"lift {t.obj}"
    if t.prep in ("out of", "from", "off", "off of"):
        return f"lift {t.obj} {t.prep} {t.target}"
    return f"move {t.obj} {'over' if t.prep in ('on', 'onto', 'on top of', 'over') else 'to'} {t.target}"


def segment_phrases(tasks: Task | list[Task], segs: list[Segment], instruction: str) -> list[str]:
    """One subtask phrase per segment; clause k of the instruction words the k-th grasp-and-release cycle."""
    tasks = [tasks] if isinstance(tasks, Task) else tasks
    out = []
    cycle = 0
    for i, seg in enumerate(segs):
        task = tasks[min(cycle, len(tasks) - 1)]
        obj = task.obj
        if seg.phase == "place":
            cycle += 1
        ph = seg.phase
        if ph == "reach":
            out.append(f"reach for {obj}")
        elif ph == "grasp":
            out.append(f"grasp {obj}" if task.kind != "articulated" else f"grasp the handle of {obj}")
        elif ph == "transport":
            if task.kind == "articulated":
                out.append(f"{'pull' if task.verb == 'open' else 'push'} {obj} {'open' if task.verb == 'open' else 'closed'}")
            elif task.kind == "other":
                out.append(f"{task.verb} {obj}" + (f" {task.prep} {task.target}" if task.target else ""))
            else:
                out.append(_transport_phrase(task))
        elif ph == "place":
            if task.kind in ("pick_place",) and task.target:
                out.append(_place_phrase(task))
            elif task.kind == "articulated":
                out.append(f"let go of the handle of {obj}")
            else:
                out.append(f"release {obj}")
        elif ph == "retreat":
            out.append("move the arm away")
        else:  # move: gripper-free motion
            if i == 0 and len(segs) > 1:
                out.append(f"reach for {obj}")
            else:
                verb = {"articulated": task.verb, "other": task.verb}.get(task.kind)
                base = f"{verb} {obj}" if verb else _clean(instruction) if task.kind != "generic" else "move the arm"
                out.append(base)
    return out


class RulesLabeler:
    """Deterministic, offline labeler (the default)."""

    name = "rules"

    def __init__(self, params: SegmentParams = SegmentParams()) -> None:
        self.params = params

    def label(self, episode: Episode, ref: str = "") -> Labeling:
        g, g0, _ = episode.gripper_signal()
        segs = segment_episode(episode.states, self.params, g, g0)
        tasks = parse_instructions(episode.instruction)
        phrases = segment_phrases(tasks, segs, episode.instruction)
        states = episode.states
        out = [
            LabeledSegment(s.start, s.end, phrase, plan_phrase(states[s.end, :3] - states[s.start, :3], s.gripper))  # type: ignore[arg-type]
            for s, phrase in zip(segs, phrases)
        ]
        return Labeling(out, "rules", generic=any(t.kind == "generic" for t in tasks))

