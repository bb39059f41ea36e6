"""Instruction reading: speed and how often it names the right task, refuses, or names a wrong one.

The reader (robot/sim/instructions.py, a lexicon in assets/lexicon.json) against the matcher it
replaced (difflib similarity to every task's template, threshold 0.72, kept here verbatim as the
baseline), in the same run, on the paraphrase tables in tests/instruction_paraphrases.py:
TUNED (the lexicon was written against it) and HELD_OUT (written before the lexicon, never
tuned on). A row is right when the reader names the expected task, asks back where the table
says "ask", or refuses where it says "refuse"; refused when it refuses or asks where a task was
expected; wrong when it names any other task (the failure that matters: the arm does the wrong
thing). The baseline cannot ask, so its "ask" rows are right only never. Prints one JSON object.

    python benchmarks/instructions.py [--min-time 1.0]
"""

from __future__ import annotations

import argparse
import difflib
import functools
import itertools
import json
import re
import sys
import time
import unicodedata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from robot.sim.instructions import AmbiguousInstruction, match_instruction  # noqa: E402
from robot.sim.scene import CONTAINERS, FLAGS, PICKABLES  # noqa: E402
from robot.sim.tasks import TASKS, languages  # noqa: E402
from tests.instruction_paraphrases import HELD_OUT, TUNED  # noqa: E402


def normalize(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    text = re.sub(r"[\s,.;:!?，。！？、\"'“”‘’()]+", " ", text)
    return " ".join(text.split())


@functools.lru_cache(maxsize=1)
def catalogue_for_baseline() -> tuple:
    """(normalized template, lang, task) for every task × parameter × language, as the old matcher built it."""
    tasks = []
    for cls in TASKS.values():
        fields = getattr(cls, "__dataclass_fields__", {})
        if "flag" in fields:
            tasks += [cls(flag=f) for f in FLAGS]
        elif "target" in fields:
            tasks += [cls(object=o, target=t) for o, t in itertools.product(PICKABLES, CONTAINERS)]
        else:
            tasks += [cls(object=o) for o in PICKABLES]
    return tuple((normalize(t.instruction(lang)), lang, t) for t, lang in itertools.product(tasks, languages()))


def difflib_matcher(text: str, threshold: float = 0.72):
    """The matcher before issue 16: exact template, else the most similar template above the threshold."""
    norm = normalize(text)
    best = None
    for canon, _lang, task in catalogue_for_baseline():
        if canon == norm:
            return task
        score = difflib.SequenceMatcher(None, norm, canon, autojunk=False).ratio()
        if best is None or score > best[0]:
            best = (score, task)
    if best is not None and best[0] >= threshold:
        return best[1]
    raise ValueError(f"nothing close enough to “{text}”")


def reader(text: str):
    return match_instruction(text).task


def label(fn, text: str) -> str:
    try:
        task = fn(text)
    except AmbiguousInstruction:
        return "ask"
    except ValueError:
        return "refuse"
    return " ".join([task.name] + [getattr(task, f) for f in ("object", "target", "flag") if hasattr(task, f)])


def shares(fn, rows: list[tuple[str, str]]) -> dict:
    counts = {"right": 0, "refused": 0, "wrong": 0}
    wrong = []
    for text, want in rows:
        got = label(fn, text)
        if got == want:
            counts["right"] += 1
        elif got in ("ask", "refuse") or (want in ("ask", "refuse") and got in ("ask", "refuse")):
            counts["refused"] += 1
        else:
            counts["wrong"] += 1
            wrong.append(f"{text} → {got} (expected {want})")
    n = len(rows)
    return {"n": n, **{k: round(v / n, 3) for k, v in counts.items()}, "wrong_rows": wrong}


def rate(fn, texts: list[str], min_time: float) -> float:
    n, start = 0, time.perf_counter()
    while True:
        for t in texts:
            try:
                fn(t)
            except ValueError:
                pass
        n += len(texts)
        if time.perf_counter() - start >= min_time:
            return n / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--min-time", type=float, default=1.0, help="seconds each matcher is timed for")
    args = ap.parse_args()
    tuned = list(itertools.chain.from_iterable(TUNED.values()))
    held = list(itertools.chain.from_iterable(HELD_OUT.values()))
    texts = [t for t, _ in tuned + held]
    label(reader, texts[0]), label(difflib_matcher, texts[0])  # load the lexicon and templates outside the timing
    out = {
        "instructions": len(texts),
        "reader_per_s": round(rate(reader, texts, args.min_time), 1),
        "difflib_per_s": round(rate(difflib_matcher, texts, args.min_time), 1),
    }
    out["speedup"] = round(out["reader_per_s"] / out["difflib_per_s"], 1)
    for name, rows in (("tuned", tuned), ("held_out", held)):
        out[f"{name}_reader"] = shares(reader, rows)
        out[f"{name}_difflib"] = {k: v for k, v in shares(difflib_matcher, rows).items() if k != "wrong_rows"}
    for lang in HELD_OUT:
        out[f"held_out_{lang}_reader_right"] = shares(reader, HELD_OUT[lang])["right"]
    print(json.dumps(out, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
