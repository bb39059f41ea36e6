"""Typed instruction → simulated task, in any of the languages of assets/instructions.json.

The scripted policy and the sim validator need to know which task the person means;
the web demo and the `python -m policy` CLI both ask here.
Every task × parameter × language is rendered with the sim's own templates
(`Task.instruction(lang)`); the typed text matches one exactly (after case, spacing and
punctuation are normalised) or, failing that, the closest one above a similarity
threshold. Nothing close enough raises a `ValueError` that lists what the simulator can do.
"""

from __future__ import annotations

import difflib
import itertools
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True)
class Match:
    task: object  # robot.sim.tasks.Task
    lang: str
    template: str  # the canonical instruction it matched
    score: float  # 1.0 = exact


def normalize(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    text = re.sub(r"[\s,.;:!?，。！？、\"'“”‘’()]+", " ", text)
    return " ".join(text.split())


@lru_cache(maxsize=1)
def catalogue() -> tuple[tuple[str, str, object], ...]:
    """(normalized text, lang, task) for every instruction the simulator knows."""
    from robot.sim.scene import CONTAINERS, FLAGS, PICKABLES
    from robot.sim.tasks import TASKS, languages

    tasks = []
    for name, cls in TASKS.items():
        fields = getattr(cls, "__dataclass_fields__", {})
        if "flag" in fields:
            tasks += [cls(flag=f) for f in FLAGS]
        elif "target" in fields:
            tasks += [cls(object=o, target=t) for o, t in itertools.product(PICKABLES, CONTAINERS)]
        else:
            tasks += [cls(object=o) for o in PICKABLES]
    out = []
    for task, lang in itertools.product(tasks, languages()):
        out.append((normalize(task.instruction(lang)), lang, task))
    return tuple(out)


def match_instruction(text: str, threshold: float = 0.72) -> Match:
    norm = normalize(text)
    if not norm:
        raise ValueError("type an instruction, e.g. “pick up the carrot”")
    best: tuple[float, str, str, object] | None = None
    for canon, lang, task in catalogue():
        if canon == norm:
            return Match(task, lang, canon, 1.0)
        score = difflib.SequenceMatcher(None, norm, canon, autojunk=False).ratio()
        if best is None or score > best[0]:
            best = (score, canon, lang, task)
    assert best is not None
    if best[0] >= threshold:
        return Match(best[3], best[2], best[1], best[0])
    raise ValueError(f"the simulator has no task like “{text.strip()}” (closest: “{best[1]}”). {known_tasks()}")


def known_tasks() -> str:
    from robot.sim.tasks import instructions

    t = instructions()
    objs = " / ".join(v["en"] for v in t["objects"].values())
    targets = " / ".join(v["en"] for v in t["targets"].values())
    flags = " / ".join(v["en"] for v in t["flags"].values())
    return (
        f"It knows: pick up the {objs}; put the <object> {targets} (optionally “then pick it up again and lift it”); "
        f"pick up the item above the {flags} flag — also in Spanish, Mandarin and Hindi."
    )


def examples(per_language: int = 3) -> list[tuple[str, str]]:
    """(instruction, language name) examples for the page, a few per language, from the templates."""
    from robot.sim.tasks import instructions

    table = instructions()
    names = table["languages"]
    wanted = [("pick_up", {"object": "carrot"}), ("pick_and_place", {"object": "carrot", "target": "plate"}),
              ("pick_up_semantic", {"flag": "japan"}), ("pick_and_place", {"object": "banana", "target": "pot"})]
    out = []
    from robot.sim.tasks import TASKS

    for lang in names:
        for name, params in wanted[:per_language]:
            out.append((TASKS[name](**params).instruction(lang), names[lang]))
    return out
