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

__all__ = ["RulesLabeler", "parse_instruction", "Task", "segment_phrases"]

_PREPS = r"into|onto|inside|in|on top of|on|to the (?:left|right) of|to|towards|toward|next to|near|beside|under|over|at|out of|off of|off|from"
_PLACE_VERBS = r"put|place|set|move|transfer|drop|stack|lay|position|bring|relocate|take|slide|push|pull|sweep|flip|turn|knock|insert"
_PICK_VERBS = r"pick up|pick|grab|grasp|take|lift|get|remove|retrieve"
_ARTIC = r"open|close|shut"

_RE_PICK_PLACE = re.compile(
    rf"^(?:(?:{_PICK_VERBS})(?: up)? )?(?P<obj>.+?)(?: up)? and (?:{_PLACE_VERBS}|put) (?:it |them )?(?P<prep>{_PREPS}) (?P<tgt>.+)$"
)
_RE_PLACE = re.compile(rf"^(?P<verb>{_PLACE_VERBS}|{_PICK_VERBS})(?: up)? (?P<obj>.+?) (?P<prep>{_PREPS}) (?P<tgt>.+)$")
_RE_PICK = re.compile(rf"^(?P<verb>{_PICK_VERBS})(?: up)? (?P<obj>.+?)(?: up)?$")
_RE_ARTIC = re.compile(rf"^(?P<verb>{_ARTIC}) (?P<obj>.+?)$")
_RE_OTHER = re.compile(r"^(?P<verb>sweep|wipe|fold|unfold|flip|push|turn|rotate|stack|knock over|press|slide) (?P<obj>.+?)(?: (?P<prep>" + _PREPS + r") (?P<tgt>.+))?$")


@dataclass(frozen=True)
class Task:
    kind: str  # pick_place | pick | articulated | other | generic
    verb: str
    obj: str
    target: str | None = None
    prep: str | None = None


def _clean(s: str) -> str:
    s = " ".join(s.lower().replace("\u2019", "'").split())
    return re.sub(r"[.!?]+$", "", s).strip(" ,")


def _np(s: str) -> str:
    """Give a bare noun phrase an article ('carrot' -> 'the carrot')."""
    s = s.strip()
    if re.match(r"^(the|a|an|this|that|these|those|some|its|their|his|her|my|your|\d+)\b", s):
        return s
    return "the " + s


def parse_instruction(instruction: str) -> Task:
    s = _clean(instruction)
    s = re.sub(r"^(please |can you |could you |robot,? )+", "", s)
    if m := _RE_PICK_PLACE.match(s):
        return Task("pick_place", "put", _np(m["obj"]), _np(m["tgt"]), m["prep"])
    if m := _RE_ARTIC.match(s):
        return Task("articulated", m["verb"], _np(m["obj"]))
    if (m := _RE_OTHER.match(s)) and not (m["verb"] in ("stack", "slide", "push") and m["tgt"] and m["prep"] in ("on", "onto", "on top of", "into", "in")):
        tgt = _np(m["tgt"]) if m["tgt"] else None
        return Task("other", m["verb"], _np(m["obj"]), tgt, m["prep"])
    if m := _RE_PLACE.match(s):
        verb = m["verb"]
        if verb in ("pick up", "pick", "grab", "grasp", "lift", "get") and m["prep"] not in ("out of", "from", "off", "off of"):
            verb = "put"
        return Task("pick_place", verb, _np(m["obj"]), _np(m["tgt"]), m["prep"])
    if m := _RE_PICK.match(s):
        return Task("pick", m["verb"], _np(m["obj"]))
    return Task("generic", "", "the object")


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


def segment_phrases(task: Task, segs: list[Segment], instruction: str) -> list[str]:
    """One subtask phrase per segment."""
    obj = task.obj
    out = []
    for i, seg in enumerate(segs):
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
        segs = segment_episode(episode.states, self.params)
        task = parse_instruction(episode.instruction)
        phrases = segment_phrases(task, segs, episode.instruction)
        states = episode.states
        out = [
            LabeledSegment(s.start, s.end, phrase, plan_phrase(states[s.end, :3] - states[s.start, :3], s.gripper))  # type: ignore[arg-type]
            for s, phrase in zip(segs, phrases)
        ]
        return Labeling(out, "rules", generic=task.kind == "generic")

