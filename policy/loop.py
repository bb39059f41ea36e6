"""The closed loop: plan subtasks, then per subtask plan + act + validate, retrying when needed.

Usage (the CLI, the web demo and the benchmarks all do this):

    from policy.loop import ClosedLoop, LoopConfig
    loop = ClosedLoop(robot, backend, validator, LoopConfig(max_retries=3, log_dir="runs"))
    for event in loop.run("put the carrot on the plate", seed=0):   # policy.events, in order
        print(event)                                                 # EpisodeDone is always last

    # from any other thread (e.g. a UI button), while run() is being iterated:
    loop.stop("user pressed stop")     # ends at the next event boundary: EpisodeDone(success=False)
    loop.estop("e-stop")               # latches robot.safety's e-stop, then stops (no step after it)
    loop.give_verdict(True, "reason")  # the manual validator's answer (AwaitingUser what="verdict")
    loop.respond("execute")            # step-through (LoopConfig(step_through=True)), after
    loop.respond("edit", "[[move up 1.0 cm]]")   # AwaitingUser(what="execute"): run the block, run an
    loop.respond("regenerate")         # edited block (re-parsed, safety-filtered) or ask the model again
    loop.waiting                       # None, "execute" or "verdict": what the loop waits for now

`run` is a generator: the consumer drives it (iterate it in a worker thread when a UI must
stay responsive; `stop`, `estop`, `respond` and `give_verdict` are thread-safe). One
ClosedLoop runs one episode at a time; call `run` again for the next episode.

The episode in named steps (`_episode`): `_plan_subtasks` (stage 1: Tokens(subtasks)* ->
SubtasksPlanned, or SubtasksRejected when the list does not parse, asked again `plan_retries`
times), then per subtask `_run_subtask`: attempts until done or out of retries. Each
`_attempt`: `_propose` (stage 2, a `Proposal`), `_execute`, `_validate` (stage 3):
SubtaskStarted -> Tokens(plan/actions)* -> ActionsProposed, or
ActionsRejected when the output does not parse (shown, counted, retried, never executed)
-> [AwaitingUser(execute) in step-through] -> StepExecuted per step (through robot.move,
which applies the SafetyFilter; its clamps are in StepExecuted.clamps) -> [AwaitingUser
(verdict) for the manual validator] -> Tokens(validator)* -> VerdictGiven -> Retry while
not done and retries remain (`max_retries` per subtask), else EpisodeDone(success=False)
with the reason. A stop or e-stop ends the episode between any two events, and before
every robot step.

Logging: with `log_dir`, every episode writes its log folder (`policy.episode_log`: every
event but Tokens, the frames, one `Segment` record per executed block with the fields of a
D_lan record); `policy.episode_log.load_log(dir)` reads it back.
"""

from __future__ import annotations

import queue
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generator, Iterator, Literal

import numpy as np

from policy.backends import Backend, TextStream, bounded_block_regex
from policy.events import (
    ActionsProposed,
    ActionsRejected,
    AwaitingUser,
    EpisodeDone,
    EpisodeStarted,
    Event,
    Retry,
    StepExecuted,
    SubtasksPlanned,
    SubtasksRejected,
    SubtaskStarted,
    Tokens,
    VerdictGiven,
    vec,
)
from policy.episode_log import EpisodeLog
from policy.language import ActionCodec, ActionParseError, Command, VerbalizedCodec, plan_agrees
from policy.prompts import (
    ACTIONS_PREFIX,
    PromptFormatError,
    Verdict,
    action_prompt,
    action_stage_regex,
    actions_start,
    parse_plan_actions,
    parse_subtasks,
    subtasks_prompt,
    subtasks_regex,
    user_message,
)
from policy.validators import ManualVerdicts, Validator
from robot.base import EStopEngaged, Observation, PoseReader, Robot

__all__ = ["ClosedLoop", "LoopConfig", "Proposal", "Step", "block_steps"]

Step = tuple[tuple[float, float, float], "float | None"]  # (delta metres, gripper target or None)


@dataclass
class LoopConfig:
    max_retries: int = 3  # per subtask: attempts = max_retries + 1
    step_through: bool = False  # wait for the user before executing each block
    constrained: bool = True  # ask the backend to constrain the action stage to the grammar
    constrained_subtasks: bool = True  # ... and the subtask list to numbered lines (prompts.subtasks_regex)
    codec: ActionCodec = field(default_factory=VerbalizedCodec)
    adapter: bool = True
    max_steps: int = 16  # steps per block the constrained grammar allows
    subtasks_tokens: int = 400
    action_tokens: int = 1024
    plan_retries: int = 2  # extra tries when the subtask list does not parse
    log_dir: str | Path | None = None
    poll_s: float = 0.02  # how often a waiting loop looks at stop/e-stop
    # A gripper command is one step in the action language, but fingers take longer than one
    # control period to close: after a step that changes the gripper target, hold still
    # (zero-motion moves, through the safety filter) until the measured opening settles.
    # After each step: a full observation (camera frame, logged) or, when False and the robot
    # can report its pose without a frame (`ee_pos()` and `gripper_opening()`, as the sim can),
    # only the pose. Frames are still taken before each block and for the validator.
    observe_steps: bool = True
    gripper_settle_steps: int = 5
    gripper_settle_tol: float = 0.005


@dataclass(frozen=True)
class Proposal:
    """An action block to execute for one attempt: the plan, the block's text and its steps, parsed
    (the model's answer, or in step-through the block the person chose or edited)."""

    plan: str
    actions: str
    steps: tuple[Step, ...]
    parse_s: float = 0.0  # time to parse the plan and the block


class _Stopped(Exception):
    pass


def block_steps(commands: list[list[Command]]) -> tuple[Step, ...]:
    """Parsed commands -> one (summed delta, gripper target) per step; 'open' = 1.0, 'close' = 0.0."""
    steps = []
    for step in commands:
        delta = np.zeros(3)
        grip: float | None = None
        for c in step:
            delta += np.asarray(c.delta, dtype=float)
            if c.gripper is not None:
                grip = 1.0 if c.gripper == "open" else 0.0
        steps.append((vec(delta), grip))
    return tuple(steps)


class ClosedLoop:
    def __init__(self, robot: Robot, backend: Backend, validator: Validator, config: LoopConfig | None = None) -> None:
        self.robot, self.backend, self.validator = robot, backend, validator
        self.config = config or LoopConfig()
        # The robot reads its pose without a camera frame (robot.base.PoseReader: the sim, the WidowX):
        # used after each step when `observe_steps` is off, and while the gripper settles.
        self._pose_reader: PoseReader | None = robot if isinstance(robot, PoseReader) else None
        self._action_regex: str | None = None  # the action stage's grammar, set per episode
        self._stop = threading.Event()
        self._stop_reason = ""
        self._responses: queue.Queue[tuple[str, str | None]] = queue.Queue()
        self._waiting: str | None = None
        self._lock = threading.Lock()
        self._running = False

    # ------------------------------------------------------------------ controls (thread-safe)
    def stop(self, reason: str = "stopped by the user") -> None:
        self._stop_reason = self._stop_reason or reason
        self._stop.set()

    def estop(self, reason: str = "e-stop pressed") -> None:
        self.robot.safety.estop(reason)
        self.stop(f"e-stop: {reason}")

    def respond(self, action: Literal["execute", "edit", "regenerate"], text: str | None = None) -> None:
        if action not in ("execute", "edit", "regenerate"):
            raise ValueError(f"step-through answer must be 'execute', 'edit' or 'regenerate', not {action!r}")
        if action == "edit" and not text:
            raise ValueError("'edit' needs the edited action block text")
        self._responses.put((action, text))

    def give_verdict(self, done: bool, reason: str = "") -> None:
        if not isinstance(self.validator, ManualVerdicts):
            raise ValueError(f"the {self.validator.name} validator takes no manual verdict")
        self.validator.give(done, reason)

    @property
    def waiting(self) -> str | None:
        return self._waiting

    @property
    def stopped(self) -> bool:
        return self._stop.is_set() or self.robot.safety.engaged

    # ------------------------------------------------------------------ the episode
    def run(self, instruction: str, seed: int | None = None) -> Iterator[Event]:
        """Run one episode; yields policy.events. Always ends with EpisodeDone."""
        with self._lock:
            if self._running:
                raise RuntimeError("this ClosedLoop is already running an episode")
            self._running = True
        self._stop.clear()
        self._stop_reason = ""
        while not self._responses.empty():
            self._responses.get_nowait()
        self._t0 = time.perf_counter()
        self._timings = {k: 0.0 for k in ("subtasks_s", "prefill_s", "decode_s", "tokens", "parse_s", "execute_s", "validate_s", "user_s", "log_s")}
        self._counts = {"retries": 0, "rejected": 0, "done": 0}
        self._log = EpisodeLog(self.config.log_dir, instruction) if self.config.log_dir else None
        self._last_obs = None
        inner = self._episode(instruction, seed)
        done: EpisodeDone | None = None
        try:
            while True:
                if self.stopped:
                    inner.close()
                    done = self._done(False, self._stop_reason_now())
                    break
                try:
                    event = next(inner)
                except StopIteration:
                    break
                except _Stopped:
                    done = self._done(False, self._stop_reason_now())
                    break
                except EStopEngaged as e:
                    done = self._done(False, f"e-stop: {e}")
                    break
                except Exception as e:  # backend/validator/robot failure: end cleanly, say what
                    if self._log:
                        self._log.write({"type": "Error", "t": self._t(), "traceback": traceback.format_exc()})
                    done = self._done(False, f"error: {type(e).__name__}: {e}")
                    break
                if isinstance(event, EpisodeDone):
                    done = event
                    break
                if self._log and not isinstance(event, Tokens):
                    t = time.perf_counter()
                    self._log.event(event)
                    self._timings["log_s"] += time.perf_counter() - t
                yield event
            if done is None:
                done = self._done(False, "the episode ended without a result")
            if self._log:
                self._log.event(done)
                self._log.close()
            yield done
        finally:
            self._waiting = None
            with self._lock:
                self._running = False

    # ------------------------------------------------------------------ internals
    def _t(self) -> float:
        return time.perf_counter() - self._t0

    def _stop_reason_now(self) -> str:
        if self.robot.safety.engaged and not self._stop_reason.startswith("e-stop"):
            return "e-stop: the robot's e-stop latch is engaged"
        return self._stop_reason or "stopped"

    def _done(self, success: bool, reason: str) -> EpisodeDone:
        timings = dict(self._timings)
        timings["total_s"] = self._t()
        measured = sum(v for k, v in timings.items() if k.endswith("_s") and k != "total_s")
        timings["overhead_s"] = max(0.0, timings["total_s"] - measured)
        return EpisodeDone(
            t=self._t(),
            success=success,
            reason=reason,
            retries=self._counts["retries"],
            timings=timings,
            subtasks_done=self._counts["done"],
            rejected=self._counts["rejected"],
            log_dir=str(self._log.dir) if self._log else None,
        )

    def _observe(self, reuse: bool = False, **where: Any) -> Observation:
        """A camera frame; `reuse`: the last one if the arm has not moved since (one frame serves
        the verdict of a subtask and the plan of the next)."""
        if reuse and self._last_obs is not None:
            return self._last_obs
        t = time.perf_counter()
        obs = self.robot.observe()
        self._last_obs = obs
        self._timings["execute_s"] += time.perf_counter() - t
        if self._log:
            t = time.perf_counter()
            self._log.observation(self._t(), obs, **where)
            self._timings["log_s"] += time.perf_counter() - t
        return obs

    def _pose(self, **where: Any) -> tuple[np.ndarray, float]:
        r = self._pose_reader
        if not self.config.observe_steps and r is not None:
            t = time.perf_counter()
            pose = np.asarray(r.ee_pos(), dtype=float), float(r.gripper_opening())
            self._timings["execute_s"] += time.perf_counter() - t
            return pose
        obs = self._observe(stage="step", **where)
        return np.asarray(obs.ee_pos, dtype=float), float(obs.gripper)

    def _check(self) -> None:
        if self.stopped:
            raise _Stopped()

    def _wait_user(self) -> tuple[str, str | None]:
        t = time.perf_counter()
        try:
            while True:
                self._check()
                try:
                    return self._responses.get(timeout=self.config.poll_s)
                except queue.Empty:
                    continue
        finally:
            self._timings["user_s"] += time.perf_counter() - t

    # ------------------------------------------------------------------ the episode, as named steps
    def _episode(self, instruction: str, seed: int | None) -> Iterator[Event]:
        """Plan the subtasks, then run each (attempts until done or out of retries); EpisodeDone last."""
        yield EpisodeStarted(
            t=self._t(), instruction=instruction, policy=self.backend.name, validator=self.validator.name, seed=seed
        )
        subtasks = yield from self._plan_subtasks(instruction)
        if subtasks is None:
            yield self._done(False, f"the subtask list did not parse after {self.config.plan_retries + 1} tries")
            return
        cfg = self.config
        self._action_regex = action_stage_regex(bounded_block_regex(cfg.codec.regex, cfg.max_steps)) if cfg.constrained else None
        for index in range(len(subtasks)):
            failure = yield from self._run_subtask(instruction, subtasks, index)
            if failure is not None:
                yield self._done(False, failure)
                return
        yield self._done(True, f"all {len(subtasks)} subtasks done")

    def _plan_subtasks(self, instruction: str) -> Generator[Event, None, list[str] | None]:
        """Stage 1: the subtask list from the current image, asked again while it does not parse
        (`plan_retries`). Returns the subtasks, or None when no answer parsed."""
        cfg = self.config
        for _ in range(cfg.plan_retries + 1):
            obs = self._observe(stage="subtasks")
            t = time.perf_counter()
            stream = self.backend.generate(
                [user_message(subtasks_prompt(instruction))], [obs.image], "subtasks",
                constraint_regex=subtasks_regex() if cfg.constrained_subtasks else None,
                adapter=cfg.adapter, max_new_tokens=cfg.subtasks_tokens,
            )
            with stream:  # closed (the model freed) also when the episode is stopped mid-stream
                for piece in stream:
                    yield Tokens(t=self._t(), stage="subtasks", index=-1, text=piece)
            latency = time.perf_counter() - t
            self._timings["subtasks_s"] += latency
            try:
                subtasks = parse_subtasks(stream.stats.text)
            except PromptFormatError as e:
                self._counts["rejected"] += 1
                yield SubtasksRejected(t=self._t(), text=stream.stats.text, error=str(e))
                continue
            yield SubtasksPlanned(t=self._t(), subtasks=tuple(subtasks), text=stream.stats.text, latency_s=latency)
            return subtasks
        return None

    def _run_subtask(self, instruction: str, subtasks: list[str], index: int) -> Generator[Event, None, str | None]:
        """Attempts at subtask `index` until the validator says done. Returns None when done, else
        why the episode fails (no attempts left: `max_retries` retries after the first)."""
        attempt = 1
        while True:
            yield SubtaskStarted(t=self._t(), index=index, subtask=subtasks[index], attempt=attempt)
            reason = yield from self._attempt(instruction, subtasks, index, attempt)
            if reason is None:
                self._counts["done"] += 1
                return None
            if attempt > self.config.max_retries:
                return f"subtask {index + 1} ({subtasks[index]}) not done after {attempt} attempts: {reason}"
            attempt += 1
            self._counts["retries"] += 1
            yield Retry(t=self._t(), index=index, attempt=attempt, reason=reason)

    def _attempt(self, instruction: str, subtasks: list[str], index: int, attempt: int) -> Generator[Event, None, str | None]:
        """One attempt: propose a block (stage 2), execute it, ask the validator (stage 3) and log
        the segment. Returns None when the subtask is done, else why not (the retry's reason)."""
        start = self._observe(reuse=True, stage="actions", index=index, attempt=attempt)
        start_pos = np.asarray(start.ee_pos, dtype=float).copy()
        proposal = yield from self._propose(instruction, subtasks, index, start.image, start_pos)
        if isinstance(proposal, ActionsRejected):
            return f"the action block did not parse: {proposal.error}"
        yield from self._execute(proposal, index, attempt)
        self._check()
        final = self._observe(stage="validate", index=index, attempt=attempt)
        verdict = yield from self._validate(final.image, subtasks[index], index, instruction)
        if self._log:
            self._log.segment(
                self._t(), start.image, instruction=instruction, subtasks=subtasks, index=index, attempt=attempt,
                plan=proposal.plan, actions=proposal.actions, state=start_pos,
                displacement=np.asarray(final.ee_pos, dtype=float) - start_pos, done=verdict.done,
            )
        if verdict.done:
            return None
        return verdict.reason or "the validator says the subtask is not done"

    def _propose(
        self, instruction: str, subtasks: list[str], index: int, image: np.ndarray, ee: np.ndarray
    ) -> Generator[Event, None, Proposal | ActionsRejected]:
        """Stage 2: the model's plan and block for subtask `index` from the image before the attempt,
        or (step-through) what the person chose to run: that block, an edit of it, or a new one."""
        while True:
            proposal = yield from self._generate_block(instruction, subtasks, index, image, ee)
            if isinstance(proposal, ActionsRejected) or not self.config.step_through:
                return proposal
            chosen = yield from self._step_through(index, proposal)
            if chosen is not None:
                return chosen  # else: regenerate

    def _generate_block(
        self, instruction: str, subtasks: list[str], index: int, image: np.ndarray, ee: np.ndarray
    ) -> Generator[Event, None, Proposal | ActionsRejected]:
        """Ask the backend for the plan and the action block, stream them, parse them: ActionsProposed
        (returned as a Proposal) or ActionsRejected (returned too: never executed)."""
        cfg = self.config
        stream = self.backend.generate(
            [user_message(action_prompt(instruction, subtasks, index, ee=ee))], [image], "actions",
            constraint_regex=self._action_regex, adapter=cfg.adapter, max_new_tokens=cfg.action_tokens,
            context={"index": index},
        )
        yield from self._relay_action_tokens(stream, index)
        st = stream.stats
        self._timings["prefill_s"] += st.prefill_s
        self._timings["decode_s"] += st.decode_s
        self._timings["tokens"] += st.tokens
        parsed = self._parse(st.text, index)
        if isinstance(parsed, ActionsRejected):
            yield parsed
            return parsed
        yield ActionsProposed(
            t=self._t(), index=index, plan=parsed.plan, actions=parsed.actions, steps=parsed.steps,
            prefill_s=st.prefill_s, decode_s=st.decode_s, tokens=st.tokens,
            plan_agrees=_agrees(parsed.plan, parsed.steps), parse_s=parsed.parse_s,
        )
        return parsed

    def _execute(self, proposal: Proposal, index: int, attempt: int) -> Iterator[Event]:
        """Run the block one step at a time through `robot.move` (the safety filter): StepExecuted each."""
        for k, (delta, grip) in enumerate(proposal.steps):
            self._check()
            t = time.perf_counter()
            self._last_obs = None
            fc = self.robot.move(np.asarray(delta, dtype=float), grip)
            if grip is not None:
                self._settle_gripper(grip)
            self._timings["execute_s"] += time.perf_counter() - t
            ee, gr = self._pose(index=index, attempt=attempt, step=k)
            yield StepExecuted(
                t=self._t(), index=index, step=k, requested=vec(fc.requested), executed=vec(fc.delta),
                target=vec(fc.target), ee_pos=vec(ee), gripper=gr, clamps=tuple(fc.reasons),
                gripper_command=fc.gripper,
            )

    def _settle_gripper(self, grip: float) -> None:
        prev = None
        for _ in range(self.config.gripper_settle_steps):
            self._check()
            r = self._pose_reader
            g = float(r.gripper_opening()) if r is not None else float(self.robot.observe().gripper)
            if prev is not None and abs(g - prev) < self.config.gripper_settle_tol:
                return
            prev = g
            self.robot.move(np.zeros(3), grip)

    def _relay_action_tokens(self, stream: TextStream, index: int) -> Iterator[Event]:
        """Tokens(plan) until the 'Actions:' line starts, Tokens(actions) after it."""
        with stream:
            yield from self._split_action_tokens(stream, index)

    def _split_action_tokens(self, stream: TextStream, index: int) -> Iterator[Event]:
        text = ""
        in_actions = False
        for piece in stream:
            if in_actions:
                yield Tokens(t=self._t(), stage="actions", index=index, text=piece)
                continue
            before = len(text)
            text += piece
            at = actions_start(text)
            if at < 0:
                yield Tokens(t=self._t(), stage="plan", index=index, text=piece)
                continue
            in_actions = True
            split = max(0, at - before)  # the newline ends the plan
            if piece[:split]:
                yield Tokens(t=self._t(), stage="plan", index=index, text=piece[:split])
            if piece[split:]:
                yield Tokens(t=self._t(), stage="actions", index=index, text=piece[split:])

    def _parse(self, text: str, index: int) -> Proposal | ActionsRejected:
        """The model's stage-2 answer as a Proposal, or the ActionsRejected that says why it is none."""
        t = time.perf_counter()
        try:
            pa = parse_plan_actions(text)
            commands = self.config.codec.decode(pa.actions)
        except (PromptFormatError, ActionParseError) as e:
            self._timings["parse_s"] += time.perf_counter() - t
            self._counts["rejected"] += 1
            return ActionsRejected(t=self._t(), index=index, text=text, error=str(e))
        steps = block_steps(commands)
        parse_s = time.perf_counter() - t
        self._timings["parse_s"] += parse_s
        return Proposal(pa.plan, pa.actions, steps, parse_s)

    def _step_through(self, index: int, proposal: Proposal) -> Generator[Event, None, Proposal | None]:
        """Wait for execute / edit / regenerate. Returns the proposal to run, or None to regenerate."""
        plan, actions = proposal.plan, proposal.actions
        while True:
            self._waiting = "execute"
            yield AwaitingUser(t=self._t(), index=index, what="execute", actions=actions)
            try:
                action, text = self._wait_user()
            finally:
                self._waiting = None
            if action == "regenerate":
                return None
            if action == "execute":
                t = time.perf_counter()
                steps = block_steps(self.config.codec.decode(actions))
                return Proposal(plan, actions, steps, time.perf_counter() - t)
            # edit: the user's block, re-parsed (and safety-filtered when executed)
            edited = (text or "").strip()
            if edited.startswith(ACTIONS_PREFIX.strip()):
                edited = edited[len(ACTIONS_PREFIX.strip()) :].strip()
            t = time.perf_counter()
            try:
                commands = self.config.codec.decode(edited)
            except ActionParseError as e:
                self._counts["rejected"] += 1
                yield ActionsRejected(t=self._t(), index=index, text=edited, error=str(e))
                continue
            steps = block_steps(commands)
            parse_s = time.perf_counter() - t
            yield ActionsProposed(
                t=self._t(), index=index, plan=plan, actions=edited, steps=steps, prefill_s=0.0, decode_s=0.0,
                tokens=0, plan_agrees=_agrees(plan, steps), parse_s=parse_s, edited=True,
            )
            return Proposal(plan, edited, steps, parse_s)

    def _validate(self, image: np.ndarray, subtask: str, index: int, instruction: str) -> Generator[Event, None, Verdict]:
        v = self.validator
        if v.needs_user:
            self._waiting = "verdict"
            yield AwaitingUser(t=self._t(), index=index, what="verdict")
        t = time.perf_counter()
        gen = v.judge(image, subtask, index, instruction=instruction, should_stop=lambda: self.stopped)
        try:  # closing `gen` (episode stopped) closes the validator's own stream
            while True:
                try:
                    piece = next(gen)
                except StopIteration as e:
                    verdict = e.value
                    break
                yield Tokens(t=self._t(), stage="validator", index=index, text=piece)
        finally:
            gen.close()
            self._waiting = None
            latency = time.perf_counter() - t
            self._timings["user_s" if v.needs_user else "validate_s"] += latency
        if verdict is None:
            raise _Stopped()
        yield VerdictGiven(
            t=self._t(), index=index, done=bool(verdict.done), reason=verdict.reason, validator=v.name, latency_s=latency
        )
        return verdict


def _agrees(plan: str, steps: tuple[Step, ...]) -> bool:
    total = np.sum([np.asarray(d) for d, _ in steps], axis=0) if steps else np.zeros(3)
    return bool(plan_agrees(plan, total))
