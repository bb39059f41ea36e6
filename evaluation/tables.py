"""Trial records -> the trials table (one line per row and policy), as data and as Markdown."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from evaluation.stats import wilson_interval


@dataclass(frozen=True)
class Cell:
    """One row x policy cell of the trials table."""

    row: str
    policy: str
    n: int
    successes: int
    mean_retries: float
    rejected: int  # model answers that did not parse (EpisodeDone.rejected: action blocks, subtask lists), summed over the trials
    seconds_per_episode: float
    seeds: tuple[int, int]  # smallest and largest seed
    # trials whose first planned subtask is the expert's (the right object named, stage 1 done right),
    # of those whose record knows the expert's list (the simulator's; a person's trials do not)
    first_subtask_right: int = 0
    first_subtask_known: int = 0

    @property
    def rate(self) -> float:
        return self.successes / self.n if self.n else 0.0

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.successes, self.n)


def summarize(records: Iterable[dict[str, Any]], row_order: list[str] | None = None,
              policy_order: list[str] | None = None) -> list[Cell]:
    """Group trial records by (row, policy); rows and policies in the given order, then as first seen."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault((r["row"], r["policy"]), []).append(r)
    rows = list(row_order or [])
    policies = list(policy_order or [])
    for row, pol in groups:
        if row not in rows:
            rows.append(row)
        if pol not in policies:
            policies.append(pol)
    cells = []
    for row in rows:
        for pol in policies:
            rs = groups.get((row, pol))
            if not rs:
                continue
            n = len(rs)
            known = [r for r in rs if r.get("subtasks_expected")]
            cells.append(Cell(
                row=row, policy=pol, n=n,
                successes=sum(bool(r["success"]) for r in rs),
                mean_retries=sum(r["retries"] for r in rs) / n,
                rejected=sum(r["rejected"] for r in rs),
                seconds_per_episode=sum(r["seconds"] for r in rs) / n,
                seeds=(min(r["seed"] for r in rs), max(r["seed"] for r in rs)),
                first_subtask_right=sum(_first_subtask_right(r) for r in known),
                first_subtask_known=len(known),
            ))
    return cells


def _first_subtask_right(record: dict[str, Any]) -> bool:
    planned = record.get("subtasks_planned") or []
    return bool(planned) and planned[0] == record["subtasks_expected"][0]


TRIALS_HEADER = ("row", "policy", "success", "95% CI", "trials", "first subtask right", "mean retries",
                 "rejected blocks", "s/episode", "seeds")


def trials_markdown(cells: list[Cell], titles: dict[str, str] | None = None) -> str:
    """The trials table as Markdown: one line per (row, policy)."""
    titles = titles or {}
    lines = ["| " + " | ".join(TRIALS_HEADER) + " |", "|" + "---|" * len(TRIALS_HEADER)]
    for c in cells:
        lo, hi = c.interval
        first = f"{c.first_subtask_right}/{c.first_subtask_known}" if c.first_subtask_known else "—"
        lines.append(
            f"| {titles.get(c.row, c.row)} | {c.policy} | {100 * c.rate:.0f}% ({c.successes}/{c.n}) | "
            f"{100 * lo:.0f}–{100 * hi:.0f}% | {c.n} | {first} | {c.mean_retries:.2f} | {c.rejected} | "
            f"{c.seconds_per_episode:.1f} | {c.seeds[0]}–{c.seeds[1]} |"
        )
    return "\n".join(lines)
