"""Run one trial: wire an episode (robot + task + backend + validator), run the closed loop, keep the record.

`SimWorker` holds one simulator and the policies' backends for the trials of one process
(`--workers N` starts N of them, each in its own process). `RealSession` runs the same trials
on a real arm, where a person sets up each scene and records each outcome at the terminal.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from evaluation.policies import PolicySpec
from evaluation.store import log_dir, write_trial
from evaluation.suites import Trial


@dataclass(frozen=True)
class TrialSettings:
    """What every trial of one run shares."""

    out: Path  # the results folder
    image_size: int = 256  # sim camera, pixels (Bridge's 256x256)
    pose_only_steps: bool = False  # no camera frame after each step (faster; frames still before each block)
    keep_logs: bool = True  # write each episode's log (JSONL + PNG frames) under out/logs/


class TrialError(RuntimeError):
    """A trial could not be set up (a model that does not load, a server that does not answer)."""


def _backend(spec: PolicySpec) -> Any:
    from policy.backends import BackendError, make_backend
    from policy.model import ModelLoadError

    try:
        if spec.kind == "hf":
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()  # the trials' own bar says what is happening; a loading bar per worker is noise
            return make_backend("hf", model=spec.model, adapter=spec.adapter)
        if spec.kind == "openai":
            return make_backend("openai", server=spec.server, model=spec.model or "vlm2vla", base_model=spec.base_model)
    except (ModelLoadError, BackendError) as e:
        raise TrialError(f"policy {spec.label}: {e}") from None
    return None  # scripted: built per episode from the sim


def _validator(spec: PolicySpec, backend: Any, sim: Any) -> Any:
    """The spec's validator; None for `sim` (the task's ground truth, built by policy.sim_episode)."""
    from policy.validators import ValidatorError, make_validator

    kind = spec.validator or ("sim" if sim is not None else "manual")
    try:
        if kind == "sim":
            if sim is None:
                raise TrialError(f"policy {spec.label}: validator=sim needs the simulator; on a real arm use manual, self, gemini or none")
            return None
        if kind == "self":
            return make_validator("self", backend=backend, adapter=not spec.no_adapter)
        if kind == "gemini":
            return make_validator("gemini")
        return make_validator(kind)
    except ValidatorError as e:
        raise TrialError(f"policy {spec.label}: {e}") from None


def _loop_config(spec: PolicySpec, backend: Any, logs: Path | None, observe_steps: bool) -> Any:
    from policy.language import VerbalizedCodec
    from policy.loop import LoopConfig

    return LoopConfig(
        max_retries=spec.max_retries,
        codec=getattr(backend, "codec", None) or VerbalizedCodec(),
        adapter=not spec.no_adapter,
        log_dir=logs,
        observe_steps=observe_steps,
    )


def _fresh_log_dir(settings: TrialSettings, spec: PolicySpec, trial: Trial) -> Path | None:
    if not settings.keep_logs:
        return None
    d = log_dir(settings.out, spec.label, trial)
    shutil.rmtree(d, ignore_errors=True)  # a killed attempt's partial log: this run replaces it
    d.mkdir(parents=True)
    return d


def _record(spec: PolicySpec, trial: Trial, instruction: str, done: Any, success: bool, seconds: float,
            settings: TrialSettings, robot: str, outcome_by: str,
            subtasks: tuple[list[str], list[str]] | None = None) -> dict[str, Any]:
    """One trial's JSON record. `subtasks`: (the policy's last planned list, the expert's list) where
    the simulator knows the expert's; the table then tells a stage-1 miss from a stage-2 one."""
    extra = {"subtasks_planned": subtasks[0], "subtasks_expected": subtasks[1]} if subtasks else {}
    return {
        "policy": spec.label,
        "row": trial.row,
        "task": trial.task,
        "lang": trial.lang,
        "index": trial.index,
        "seed": trial.seed,
        "instruction": instruction,
        "success": bool(success),
        "loop_success": bool(done.success),
        "reason": done.reason,
        "retries": int(done.retries),
        "rejected": int(done.rejected),
        "subtasks_done": int(done.subtasks_done),
        "seconds": round(seconds, 3),
        "timings": {k: round(float(v), 4) for k, v in (done.timings or {}).items()},
        "log_dir": os.path.relpath(done.log_dir, settings.out) if done.log_dir else None,
        "robot": robot,
        "outcome_by": outcome_by,
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **extra,
    }


def _run_loop(loop: Any, instruction: str, seed: int, on_event: Callable[[Any, Any], None] | None = None) -> Any:
    from policy.events import EpisodeDone

    done = None
    for e in loop.run(instruction, seed=seed):
        if on_event is not None:
            on_event(loop, e)
        if isinstance(e, EpisodeDone):
            done = e
    assert done is not None, "the closed loop always ends with EpisodeDone"
    return done


class SimWorker:
    """One MuJoCo simulator and the policies' model backends, reused across trials (one per process)."""

    def __init__(self, settings: TrialSettings) -> None:
        self.settings = settings
        self._sim = None
        self._backends: dict[str, Any] = {}

    def sim(self) -> Any:
        if self._sim is None:
            os.environ.setdefault("MUJOCO_GL", "egl")
            from robot.sim.robot import SimConfig, SimRobot

            self._sim = SimRobot(SimConfig(image_size=self.settings.image_size))
            self._sim.connect()
        return self._sim

    def backend(self, spec: PolicySpec) -> Any:
        if spec.label not in self._backends:
            self._backends[spec.label] = _backend(spec)
        return self._backends[spec.label]

    def run(self, spec: PolicySpec, trial: Trial) -> dict[str, Any]:
        """Run one trial and write its record (atomically); returns the record."""
        from policy.events import SubtasksPlanned
        from policy.loop import ClosedLoop
        from policy.sim_episode import sim_episode
        from robot.sim.tasks import make_task

        sim, model = self.sim(), self.backend(spec)
        task = make_task(trial.task, seed=trial.seed)
        ep = sim_episode(sim, task, seed=trial.seed, backend=model, validator=_validator(spec, model, sim))
        instruction = task.instruction(trial.lang)
        cfg = _loop_config(spec, ep.backend, _fresh_log_dir(self.settings, spec, trial), not self.settings.pose_only_steps)
        loop = ClosedLoop(sim, ep.backend, ep.validator, cfg)
        expected = task.subtasks(sim)  # the expert's, on the scene sim_episode arranged
        planned: list[str] = []

        def on_event(_loop: Any, e: Any) -> None:
            if isinstance(e, SubtasksPlanned):  # a regenerated list replaces the first
                planned[:] = list(e.subtasks)

        t0 = time.perf_counter()
        done = _run_loop(loop, instruction, trial.seed, on_event)
        record = _record(spec, trial, instruction, done, bool(task.success(sim)), time.perf_counter() - t0,
                         self.settings, "sim", "simulator", subtasks=(planned, expected))
        write_trial(self.settings.out, spec.label, trial, record)
        return record

    def close(self) -> None:
        if self._sim is not None:
            self._sim.disconnect()
            self._sim = None


# ------------------------------------------------------------------ worker processes (--workers N)

_WORKER: SimWorker | None = None


def init_process(settings: TrialSettings) -> None:
    """ProcessPoolExecutor initializer: one SimWorker per process, single-threaded torch."""
    global _WORKER
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    _WORKER = SimWorker(settings)


def run_in_process(spec: PolicySpec, trial: Trial) -> dict[str, Any]:
    assert _WORKER is not None, "init_process did not run"
    return _WORKER.run(spec, trial)


# ------------------------------------------------------------------ the real arm


def ask_yes_no(ask: Callable[[str], str], question: str) -> bool:
    while True:
        answer = ask(f"{question} [y/n] ").strip().lower()
        if answer in ("y", "yes"):
            return True
        if answer in ("n", "no"):
            return False
        print("  please answer y or n")


class RealSession:
    """Trials on a real arm: a person sets up each scene, answers the manual validator, and records
    whether the trial succeeded. `ask` reads one line (the terminal's `input`)."""

    def __init__(self, robot: Any, settings: TrialSettings, ask: Callable[[str], str] = input) -> None:
        self.robot, self.settings, self.ask = robot, settings, ask
        self._backends: dict[str, Any] = {}

    def run(self, spec: PolicySpec, trial: Trial) -> dict[str, Any]:
        from policy.events import AwaitingUser, SubtaskStarted
        from policy.loop import ClosedLoop
        from robot.sim.tasks import make_task

        if spec.kind == "scripted":
            raise TrialError("the scripted policy speaks the simulator's ground truth; on a real arm use hf or openai")
        if spec.label not in self._backends:
            self._backends[spec.label] = _backend(spec)
        model = self._backends[spec.label]
        task = make_task(trial.task, seed=trial.seed)  # the seed picks the object and target to set up
        instruction = task.instruction(trial.lang)
        print(f"\n[{spec.label}] {trial.id}: set up the scene for {instruction!r}")
        self.ask("  press Enter when the scene is ready (the arm will move home, then run) ")
        self.robot.home()
        cfg = _loop_config(spec, model, _fresh_log_dir(self.settings, spec, trial), True)
        loop = ClosedLoop(self.robot, model, _validator(spec, model, None), cfg)
        subtask = {"now": ""}

        def on_event(loop: Any, e: Any) -> None:
            if isinstance(e, SubtaskStarted):
                subtask["now"] = e.subtask
                print(f"  subtask {e.index + 1}: {e.subtask} (attempt {e.attempt})")
            elif isinstance(e, AwaitingUser) and e.what == "verdict":
                loop.give_verdict(ask_yes_no(self.ask, f"  is '{subtask['now']}' done?"), "a person at the terminal")

        t0 = time.perf_counter()
        done = _run_loop(loop, instruction, trial.seed, on_event)
        seconds = time.perf_counter() - t0
        print(f"  the loop says: {'success' if done.success else 'failed'} ({done.reason})")
        success = ask_yes_no(self.ask, "  did the trial succeed?")
        record = _record(spec, trial, instruction, done, success, seconds, self.settings, "widowx", "person")
        write_trial(self.settings.out, spec.label, trial, record)
        return record

    def close(self) -> None:
        self.robot.disconnect()
