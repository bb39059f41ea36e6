"""Everything the page drives, without the page: robot, policy, validator, episodes, lock.

One `Runtime` per server process. Episodes run `policy.loop.ClosedLoop` in a worker
thread and fold its events into an `EpisodeView`; handlers read snapshots and wait on
`changed` for new events. Every method that moves the robot takes the driver lock first.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from app.config import AppConfig
from app.limits import MAX_QUESTION_CHARS, LimitError, check_instruction, log_folder_problem
from app.lock import BUSY_MESSAGE, DriverLock
from app.robot_access import CameraFeed, SharedRobot
from app.session import EpisodeView, History
from policy import events as ev
from policy.loop import ClosedLoop, LoopConfig


class UserError(ValueError):
    """Something the person can fix (empty instruction, robot busy); shown as a message."""


class Busy(UserError):
    def __init__(self, message: str = BUSY_MESSAGE) -> None:
        super().__init__(message)


@dataclass
class SetupNames:
    """The names of what this demo runs: the robot, the policy, its model and the validator (the page's
    header and the start-up line show them; a `manual` validator adds the verdict buttons)."""

    robot: str
    policy: str
    model: str
    validator: str


NO_MODEL_MESSAGE = (
    "The scripted policy reads the simulator's ground truth — there is no language model loaded, "
    "so there is nothing to ask. Start the demo with a Gemma 3 model to chat about the image:\n\n"
    "    python -m app --policy hf --model google/gemma-3-12b-it --adapter path/to/adapter\n"
    "    python -m app --policy openai --server http://localhost:8000/v1 --model vlm2vla\n\n"
    "(offline: `python -m training.tiny` builds a tiny random Gemma 3 in tiny/ to try the wiring.)"
)


@dataclass(frozen=True)
class EpisodePolicy:
    """What one episode runs with: the backend that speaks, the validator that judges, and what the
    page must say about that choice (e.g. why the model's own validator judges instead of the sim's)."""

    backend: Any
    validator: Any
    notice: str = ""


class Runtime:
    def __init__(
        self,
        config: AppConfig,
        robot: Any,
        make_policy: Callable[[str], EpisodePolicy],
        names: SetupNames,
        vqa: Callable[..., Iterator[str]] | None = None,
        camera_fps: float = 12.0,
    ) -> None:
        """`make_policy(instruction) -> EpisodePolicy` for one episode; `vqa(image, question, adapter)`
        streams an answer (None: no model)."""
        self.config = config
        self.robot = robot if isinstance(robot, SharedRobot) else SharedRobot(robot)
        self.make_policy = make_policy
        self.names = names
        self.vqa_fn = vqa
        self.lock = DriverLock()
        self.history = History(Path(config.logs))
        self.view: EpisodeView | None = None
        self.loop: ClosedLoop | None = None
        self.seed = config.seed
        self.changed = threading.Condition()
        self.camera = CameraFeed(self.robot, fps=camera_fps)
        self._thread: threading.Thread | None = None
        self._start_mutex = threading.Lock()

    def start_camera(self) -> "Runtime":
        self.camera.start()
        return self

    def close(self) -> None:
        if self.loop is not None:
            self.loop.estop("the demo is shutting down")
        self.camera.close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            self.robot.disconnect()  # frees the GL context on the thread that owns it
        except Exception:
            pass

    # ------------------------------------------------------------------ state for the page
    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def snapshot(self) -> EpisodeView | None:
        v = self.view
        return None if v is None else v.snapshot()

    def wait_change(self, version: int, timeout: float = 0.5) -> None:
        """Block until the episode view's version differs from `version` (or timeout)."""
        with self.changed:
            self.changed.wait_for(lambda: self.view is not None and self.view.version != version, timeout=timeout)

    def _notify(self) -> None:
        with self.changed:
            self.changed.notify_all()

    def objects(self) -> dict[str, tuple[float, float, float]]:
        """Object positions (sim); {} for a real arm."""
        fn = getattr(self.robot.robot, "object_positions", None)
        if fn is None:
            return {}
        try:
            pos = self.robot.call(lambda r: r.object_positions())
        except Exception:
            return {}
        return {n: tuple(float(x) for x in np.asarray(p)[:3]) for n, p in pos.items()}

    # ------------------------------------------------------------------ episodes
    def start(self, instruction: str, session: str, step_through: bool = False) -> EpisodeView:
        try:  # bounded before any lock is taken: nothing below grows with what was typed
            instruction = check_instruction(instruction)
        except LimitError as e:
            raise UserError(str(e)) from None
        if not instruction:
            raise UserError("type an instruction first, e.g. “pick up the carrot”")
        log_problem = log_folder_problem(Path(self.config.logs))
        with self._start_mutex:
            if self.lock.busy_for(session):
                raise Busy(self.lock.busy_message())
            if self.running:
                raise UserError("an episode is already running — press Stop first")
            if not self.lock.acquire(session, "episode"):
                raise Busy(self.lock.busy_message())
            try:
                policy = self.make_policy(instruction)
            except Exception as e:
                self.lock.release(session)
                raise UserError(f"could not start: {e}") from e
            self.robot.safety.reset()  # a new episode re-arms the arm after an e-stop
            # an unwritable log folder: the episode runs without a log, and the page says why
            cfg = LoopConfig(max_retries=self.config.max_retries, step_through=step_through,
                             log_dir=None if log_problem else self.config.logs)
            self.loop = ClosedLoop(self.robot, policy.backend, policy.validator, cfg)
            notices = [policy.notice, f"episode log not written: {log_problem}" if log_problem else ""]
            self.view = EpisodeView(driver=session, notice="; ".join(n for n in notices if n))
            self._thread = threading.Thread(
                target=self._episode, args=(self.loop, self.view, instruction, session), name="episode", daemon=True
            )
            self._thread.start()
            return self.view

    def _episode(self, loop: ClosedLoop, view: EpisodeView, instruction: str, session: str) -> None:
        # The view shows the episode finished only once it is wrapped up: its history row (the log zipped)
        # added and the driver lock free. Whoever sees it finished (the driver's stream, a watcher, an API
        # client reading /history next) then sees the row and a robot free for the next Run or Reset.
        done: ev.EpisodeDone | None = None
        try:
            for event in loop.run(instruction, seed=self.seed):
                if isinstance(event, ev.EpisodeDone):
                    done = event  # applied last, below
                    continue
                view.apply(event)
                self._notify()
        except Exception as e:  # the loop ends cleanly on its own errors; this is the last resort
            done = done or view.failure(f"error: {type(e).__name__}: {e}")
        finally:
            done = done or view.failure("the episode ended without a result")
            try:
                final = view.snapshot()  # the view as it reads once finished, for the history row
                final.apply(done)
                self.history.add(final)
            finally:
                self.lock.release(session)
                view.apply(done)
                self._notify()

    def stop(self, session: str) -> str:
        """E-stop: anyone watching may press it. Latches the arm's e-stop, runs the arm's own stop() at once
        (even while a move hangs in the driver) and ends the episode. An episode whose robot call does not
        return within 3 s cannot end: its driver lock is then reported stuck, to everyone, until it does."""
        self.robot.stop()
        failed = f" ({self.robot.stop_error})" if getattr(self.robot, "stop_error", "") else ""
        loop = self.loop
        if loop is not None and self.running:
            loop.estop("Stop pressed in the web demo")
            if self._thread is not None:
                self._thread.join(timeout=3.0)
            if self.running:
                call = self.robot.in_flight()
                what = f"the arm's {call[0]} has not returned for {call[1]:.0f} s" if call else "the episode has not ended"
                self.lock.mark_stuck(f"{what}; the arm was told to stop{failed}. The robot frees itself when the call "
                                     "returns; if it never does, restart the demo")
                return f"stopped, but {self.lock.stuck}"
            return f"stopped — the arm holds where it is; Run or Reset scene re-arms it{failed}"
        return f"e-stop engaged — the arm holds where it is; Run or Reset scene re-arms it{failed}"

    def release(self, session: str) -> None:
        """The tab closed: a driver that leaves stops the arm and frees the lock."""
        if self.lock.held_by(session):
            if self.running:
                self.stop(session)
            if not self.running:  # an episode stuck in a robot call keeps its lock, reported stuck, until it returns
                self.lock.release(session)

    def reset(self, session: str, seed: int | None = None) -> int:
        with self._start_mutex:
            if self.lock.busy_for(session):
                raise Busy(self.lock.busy_message())
            if self.running:
                raise UserError("an episode is running — press Stop first")
            if not self.lock.acquire(session, "reset"):
                raise Busy(self.lock.busy_message())
        try:
            self.seed = int(seed) if seed is not None else random.randrange(1, 10_000)
            if hasattr(self.robot.robot, "reset"):
                self.robot.reset(self.seed)
            else:
                self.robot.safety.reset()
                self.robot.home()
            self.view = None
            self.camera.grab()
            self._notify()
            return self.seed
        finally:
            self.lock.release(session)

    def _driving_loop(self, session: str, what: str) -> ClosedLoop:
        if self.lock.busy_for(session):
            raise Busy()
        loop = self.loop
        if loop is None or not self.running:
            raise UserError("no episode is running")
        if not self.lock.held_by(session):
            raise UserError("only the person driving can answer")
        if loop.waiting != what:
            raise UserError(
                {"execute": "the loop is not waiting to execute a block (use Step to run in step-through mode)",
                 "verdict": "the loop is not waiting for a verdict (start the demo with --validator manual)"}[what]
            )
        return loop

    def respond(self, session: str, action: str, text: str | None = None) -> None:
        """Step-through: 'execute', 'edit' (with the edited block) or 'regenerate'."""
        self._driving_loop(session, "execute").respond(action, text)

    def verdict(self, session: str, done: bool) -> None:
        self._driving_loop(session, "verdict").give_verdict(done)

    # ------------------------------------------------------------------ VQA
    @property
    def has_model(self) -> bool:
        return self.vqa_fn is not None

    def vqa(self, image: np.ndarray, question: str, adapter: bool = True) -> Iterator[str]:
        if self.vqa_fn is None:
            raise UserError(NO_MODEL_MESSAGE)
        if not (question or "").strip():
            raise UserError("type a question about the image")
        if len(question) > MAX_QUESTION_CHARS:
            raise UserError(f"the question is {len(question):,} characters long; at most {MAX_QUESTION_CHARS} are read")
        return self.vqa_fn(image, question.strip(), adapter=adapter)


def wait_until(pred: Callable[[], bool], timeout: float, poll: float = 0.02) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(poll)
    return pred()
