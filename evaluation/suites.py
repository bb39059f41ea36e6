"""Which trials a study runs: the paper's Fig. 5 rows mapped onto the simulator's tasks.

A suite is a list of `Row`s; a row runs one sim task in one or more instruction languages.
Trial k of a row (in each of its languages) is the scene `training.seeds.eval_seed(k)`:
seeds from 1,000,000 up, disjoint from every seed training uses (`training/seeds.py`).
The same k gives the same scene (object, target, layout) in every row of the same task and
for every policy, so rows and policies are compared on paired scenes; the multilingual row
asks for the pick-up scenes of the English row in Spanish, Mandarin and Hindi (3x the trials).

    >>> [t.id for t in trials_for(SUITES["fig5"][3], 2)]
    ['pick_up_multilingual/es/1000000', 'pick_up_multilingual/es/1000001', 'pick_up_multilingual/zh/1000000', 'pick_up_multilingual/zh/1000001', 'pick_up_multilingual/hi/1000000', 'pick_up_multilingual/hi/1000001']
"""

from __future__ import annotations

from dataclasses import dataclass

from training.seeds import eval_seed


@dataclass(frozen=True)
class Row:
    """One row of the trials table."""

    key: str  # stable id, used in file names ("pick_up_multilingual")
    title: str  # the paper's name for it ("Pick Up-T")
    task: str  # the sim task (robot.sim.tasks)
    group: str  # "in distribution", "multilingual" or "semantic"
    langs: tuple[str, ...] = ("en",)  # instruction languages; trials per row = trials x len(langs)


@dataclass(frozen=True)
class Trial:
    """One episode to run: a row's task in one language on one evaluation scene."""

    row: str
    task: str
    lang: str
    index: int  # k: the k-th evaluation scene
    seed: int  # eval_seed(k)

    @property
    def id(self) -> str:
        return f"{self.row}/{self.lang}/{self.seed}"


SUITES: dict[str, tuple[Row, ...]] = {
    "fig5": (
        Row("pick_up", "Pick Up", "pick_up", "in distribution"),
        Row("pick_place_lift", "Pick Place & Lift", "pick_place_lift", "in distribution"),
        Row("pick_and_place", "Pick and Place", "pick_and_place", "in distribution"),
        Row("pick_up_multilingual", "Pick Up-T (es, zh, hi)", "pick_up", "multilingual", ("es", "zh", "hi")),
        Row("pick_up_semantic", "Pick Up-A (semantic)", "pick_up_semantic", "semantic"),
    ),
}


def suite_rows(name: str, only: list[str] | None = None) -> tuple[Row, ...]:
    """The rows of suite `name`, optionally only those whose key is in `only`."""
    if name not in SUITES:
        raise ValueError(f"unknown suite {name!r}; choose one of {', '.join(SUITES)}")
    rows = SUITES[name]
    if only:
        unknown = sorted(set(only) - {r.key for r in rows})
        if unknown:
            raise ValueError(f"suite {name} has no row {', '.join(unknown)}; its rows: {', '.join(r.key for r in rows)}")
        rows = tuple(r for r in rows if r.key in only)
    return rows


def trials_for(row: Row, n: int) -> list[Trial]:
    """The n trials of a row in each of its languages (language-major)."""
    return [Trial(row.key, row.task, lang, k, eval_seed(k)) for lang in row.langs for k in range(n)]
