"""The typed events of the closed loop.

`policy.loop` yields these; the web demo, the CLI and the benchmarks consume them.
Every event carries `t`, seconds since the episode started. An episode's stream is:

    EpisodeStarted
    (Tokens(stage="subtasks")*  SubtasksRejected)*   (a list that did not parse; asked again)
    Tokens(stage="subtasks")*  SubtasksPlanned
    for each subtask:
        SubtaskStarted
        Tokens(stage="plan"|"actions")*  ActionsProposed | ActionsRejected
        StepExecuted*                  (one per action step, after the safety filter)
        Tokens(stage="validator")*  VerdictGiven
        Retry                          (when the verdict is "not done" and attempts remain)
    EpisodeDone                        (always last; also after stop, e-stop or an error)

`AwaitingUser` appears in step-through mode and with the manual validator, whenever
the loop waits for a person.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

Stage = Literal["subtasks", "plan", "actions", "validator", "vqa"]


@dataclass(frozen=True)
class Event:
    t: float


@dataclass(frozen=True)
class EpisodeStarted(Event):
    instruction: str
    policy: str
    validator: str
    seed: int | None = None


@dataclass(frozen=True)
class Tokens(Event):
    """A piece of streamed model text for `stage` (subtask `index`; -1 before subtasks exist)."""

    stage: Stage
    index: int
    text: str


@dataclass(frozen=True)
class SubtasksPlanned(Event):
    subtasks: tuple[str, ...]
    text: str
    latency_s: float


@dataclass(frozen=True)
class SubtasksRejected(Event):
    """A subtask list that did not parse: shown and counted; the model is asked again
    (`LoopConfig.plan_retries`), and the episode fails when no answer parses."""

    text: str
    error: str


@dataclass(frozen=True)
class SubtaskStarted(Event):
    index: int
    subtask: str
    attempt: int  # 1-based


@dataclass(frozen=True)
class ActionsProposed(Event):
    """A plan and a block that parsed; `steps` are the per-step deltas (metres) and gripper targets."""

    index: int
    plan: str
    actions: str
    steps: tuple[tuple[tuple[float, float, float], float | None], ...]
    prefill_s: float
    decode_s: float
    tokens: int
    plan_agrees: bool
    parse_s: float = 0.0  # time to parse the plan and the block
    edited: bool = False  # the block was written by the user in step-through mode


@dataclass(frozen=True)
class ActionsRejected(Event):
    """A plan and action block that did not parse (the model's, or a block edited in step-through):
    shown and counted, never executed."""

    index: int
    text: str
    error: str


@dataclass(frozen=True)
class StepExecuted(Event):
    index: int
    step: int
    requested: tuple[float, float, float]  # metres, as the model asked
    executed: tuple[float, float, float]  # metres, after the safety filter
    target: tuple[float, float, float]
    ee_pos: tuple[float, float, float]  # measured after the step
    gripper: float  # measured after the step, 1 = open
    clamps: tuple[str, ...] = ()  # what the safety filter changed, one line each
    gripper_command: float | None = None  # the gripper target this step commanded (1 = open); None: unchanged

    @property
    def clamped(self) -> bool:
        return bool(self.clamps)


@dataclass(frozen=True)
class VerdictGiven(Event):
    index: int
    done: bool
    reason: str
    validator: str
    latency_s: float


@dataclass(frozen=True)
class Retry(Event):
    index: int
    attempt: int  # the attempt about to start
    reason: str


@dataclass(frozen=True)
class AwaitingUser(Event):
    """The loop is paused for a person: 'execute' (step-through) or 'verdict' (manual validator)."""

    index: int
    what: Literal["execute", "verdict"]
    actions: str = ""  # for 'execute': the block that will run unless the user edits it


@dataclass(frozen=True)
class EpisodeDone(Event):
    success: bool
    reason: str
    retries: int
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase, summed (and 'tokens', a count)
    subtasks_done: int = 0
    rejected: int = 0  # model answers that did not parse: action blocks (never executed) and subtask lists
    log_dir: str | None = None  # where the episode was logged


def vec(x) -> tuple[float, float, float]:
    """A (3,) array as a plain tuple of floats (events stay JSON-friendly)."""
    a = np.asarray(x, dtype=float).reshape(3)
    return (float(a[0]), float(a[1]), float(a[2]))
