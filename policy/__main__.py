"""Run the VLA closed loop from the command line.

    python -m policy --robot sim --policy scripted --validator sim --instruction "put the carrot on the plate"
    python -m policy --robot sim --task pick_up --episodes 10 --seed 0 --quiet
    python -m policy --robot sim --policy hf --model tiny/ [--adapter run/] --validator sim
    python -m policy --robot sim --policy openai --server http://127.0.0.1:8000 --model vlm2vla

Prints the event stream (model text as it streams, one line per other event) and ends with
a success table. With the simulator, success is the task's ground truth.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

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
)


class CLIError(Exception):
    pass


def match_instruction(text: str) -> tuple[Any, str]:
    """The sim task an instruction names, in any of the sim's languages, and that language."""
    from robot.sim.instructions import match_instruction as match

    try:
        m = match(text)
    except ValueError as e:
        raise CLIError(f"{e} Or give --task NAME.") from None
    return m.task, m.lang


# ---------------------------------------------------------------------------- printing


class Printer:
    def __init__(self, quiet: bool = False, out=None) -> None:
        self.quiet, self.out = quiet, out or sys.stdout
        self._stage: tuple[str, int] | None = None

    def _line(self, s: str) -> None:
        if self._stage is not None:
            self.out.write("\n")
            self._stage = None
        self.out.write(s + "\n")
        self.out.flush()

    def __call__(self, e: Event) -> None:
        if isinstance(e, Tokens):
            if self.quiet:
                return
            key = (e.stage, e.index)
            if self._stage != key:
                if self._stage is not None:
                    self.out.write("\n")
                self.out.write(f"  [{e.stage}] ")
                self._stage = key
            text = e.text[:-1] if e.text.endswith("\n") else e.text
            self.out.write(text.replace("\n", "\n  " + " " * (len(e.stage) + 3)))
            self.out.flush()
            return
        if isinstance(e, EpisodeDone):
            self._line(f"{e.t:7.2f}s  {'SUCCESS' if e.success else 'FAILED'}: {e.reason} (retries {e.retries}, rejected blocks {e.rejected})")
            return
        if self.quiet and not isinstance(e, (EpisodeStarted, SubtasksRejected, ActionsRejected, Retry)):
            return
        t = f"{e.t:7.2f}s  "
        if isinstance(e, EpisodeStarted):
            self._line(f"{t}episode: {e.instruction!r}  policy={e.policy} validator={e.validator} seed={e.seed}")
        elif isinstance(e, SubtasksRejected):
            self._line(f"{t}subtask list REJECTED (asking again): {e.error}")
        elif isinstance(e, SubtasksPlanned):
            self._line(f"{t}subtasks: " + " | ".join(f"{i + 1}. {s}" for i, s in enumerate(e.subtasks)))
        elif isinstance(e, SubtaskStarted):
            self._line(f"{t}subtask {e.index + 1}: {e.subtask} (attempt {e.attempt})")
        elif isinstance(e, ActionsProposed):
            agree = "" if e.plan_agrees else "  (plan and actions disagree)"
            self._line(f"{t}  {len(e.steps)} steps, {e.tokens} tokens, prefill {e.prefill_s * 1000:.0f} ms, decode {e.decode_s * 1000:.0f} ms{agree}")
        elif isinstance(e, ActionsRejected):
            self._line(f"{t}  REJECTED (not executed): {e.error}")
        elif isinstance(e, StepExecuted):
            c = "  CLAMPED: " + "; ".join(e.clamps) if e.clamps else ""
            req = ", ".join(f"{v * 100:+.1f}" for v in e.requested)
            self._line(f"{t}    step {e.step + 1}: ({req}) cm -> ee ({', '.join(f'{v:.3f}' for v in e.ee_pos)}) m, gripper {e.gripper:.2f}{c}")
        elif isinstance(e, VerdictGiven):
            self._line(f"{t}  verdict ({e.validator}, {e.latency_s * 1000:.0f} ms): {'done' if e.done else 'not done'} — {e.reason}")
        elif isinstance(e, Retry):
            self._line(f"{t}  retry: attempt {e.attempt} of subtask {e.index + 1} ({e.reason})")
        elif isinstance(e, AwaitingUser):
            self._line(f"{t}  waiting for you ({e.what})")


# ---------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m policy", description="Run the VLM2VLA closed loop: plan subtasks, act, validate, retry.")
    ap.add_argument("--robot", choices=["sim", "widowx"], default="sim", help="the arm (default: the MuJoCo simulation)")
    ap.add_argument("--task", help="sim task: pick_up, pick_and_place, pick_place_lift, pick_up_semantic (default: matched from --instruction)")
    ap.add_argument("--instruction", help="what to do, e.g. 'put the carrot on the plate' (any of the sim's languages)")
    ap.add_argument("--lang", default="en", help="instruction language when only --task is given (en, es, zh, hi)")
    ap.add_argument("--policy", choices=["scripted", "hf", "openai"], default="scripted")
    ap.add_argument("--model", help="hf: base model hub id or folder; openai: the served model name (e.g. vlm2vla)")
    ap.add_argument("--adapter", help="hf: LoRA adapter folder (training.finetune --out)")
    ap.add_argument("--no-adapter", action="store_true", help="answer as the base model (adapter switched off)")
    ap.add_argument("--server", help="openai: server URL, e.g. http://127.0.0.1:8000")
    ap.add_argument("--base-model", help="openai: the base model's served name (for --no-adapter)")
    ap.add_argument("--validator", choices=["sim", "gemini", "self", "manual", "none"], default=None, help="default: sim with --robot sim, else none")
    ap.add_argument("--gemini-model", default="gemini-2.5-pro")
    ap.add_argument("--episodes", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0, help="seed of the first episode (episode k uses seed + k)")
    ap.add_argument("--max-retries", type=int, default=3, help="retries per subtask before the episode fails")
    ap.add_argument("--unconstrained", action="store_true", help="do not constrain the action stage to the grammar")
    ap.add_argument("--step-through", action="store_true", help="ask before executing each block (execute / edit / regenerate)")
    ap.add_argument("--pace", type=float, default=0.0, help="scripted: characters per second (0 = instant)")
    ap.add_argument("--log-dir", help="log every episode (JSONL + PNG) under this folder")
    ap.add_argument("--image-size", type=int, default=256, help="sim camera size in pixels (256 as Bridge)")
    ap.add_argument("--pose-only-steps", action="store_true", help="no camera frame after each step (faster sim runs)")
    ap.add_argument("--quiet", action="store_true", help="print only episode results")
    return ap


def _backend(args: argparse.Namespace) -> Any:
    from policy.backends import BackendError

    if args.policy == "hf":
        if not args.model:
            raise CLIError("--policy hf needs --model (a hub id or a folder; python -m training.tiny --out tiny builds a tiny one)")
        from policy.backends.hf import HFBackend
        from policy.model import ModelLoadError

        if args.quiet:  # --quiet prints episode results only: no "Loading weights" bar
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
        try:
            return HFBackend.from_pretrained(args.model, adapter=args.adapter)
        except (ModelLoadError, BackendError) as e:
            raise CLIError(str(e)) from None
    if args.policy == "openai":
        if not args.server:
            raise CLIError("--policy openai needs --server URL (e.g. http://127.0.0.1:8000 from `vllm serve`)")
        from policy.backends.openai import OpenAIBackend

        try:
            return OpenAIBackend(args.server, model=args.model or "vlm2vla", base_model=args.base_model)
        except BackendError as e:
            raise CLIError(str(e)) from None
    return None  # scripted: built per episode from the sim


def _validator(args: argparse.Namespace, backend: Any) -> Any:
    """The validator the flags name; None for `sim` (the episode's ground truth, built by policy.sim_episode)."""
    from policy.validators import ValidatorError, make_validator

    kind = args.validator or "sim"
    try:
        if kind == "sim":
            return None
        if kind == "self":
            if backend is None:
                raise CLIError("--validator self needs a model: --policy hf or openai")
            return make_validator("self", backend=backend, adapter=not args.no_adapter)
        if kind == "gemini":
            return make_validator("gemini", model=args.gemini_model)
        if kind == "manual":
            raise CLIError("--validator manual needs a person at the web demo (python -m app); on the command line use sim, self, gemini or none")
        return make_validator(kind)
    except ValidatorError as e:
        raise CLIError(str(e)) from None


def _step_through_input(loop: Any, e: AwaitingUser) -> None:
    answer = input("  [e]xecute, [r]egenerate, or type an edited block: ").strip()
    if answer in ("", "e", "execute"):
        loop.respond("execute")
    elif answer in ("r", "regenerate"):
        loop.respond("regenerate")
    else:
        loop.respond("edit", answer)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _main(args)
    except CLIError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130


def _main(args: argparse.Namespace) -> int:
    from policy.gcfreeze import freeze_long_lived_objects
    from policy.language import VerbalizedCodec
    from policy.loop import ClosedLoop, LoopConfig

    if args.episodes < 1:
        raise CLIError("--episodes must be at least 1")
    if args.robot == "widowx":
        raise CLIError("--robot widowx: the real arm runs from the web demo (python -m app --robot widowx); this CLI drives the simulation")
    if args.policy == "scripted" and args.robot != "sim":
        raise CLIError("--policy scripted speaks the simulator's ground truth; it needs --robot sim")
    os.environ.setdefault("MUJOCO_GL", "egl")
    from policy.sim_episode import sim_episode
    from robot.sim.robot import SimConfig, SimRobot
    from robot.sim.tasks import make_task

    if args.task:
        try:
            task0 = make_task(args.task, seed=args.seed)
        except ValueError as e:
            raise CLIError(str(e)) from None
        lang = args.lang
    elif args.instruction:
        try:
            task0, lang = match_instruction(args.instruction)
        except CLIError as refused:
            if args.policy == "scripted":  # the expert speaks a task's ground truth: it needs one
                raise
            task0, lang = None, "en"  # a model reads the instruction itself and may try it anyway
            unnamed = str(refused).removesuffix(" Or give --task NAME.")
    else:
        raise CLIError("give --instruction TEXT or --task NAME")

    backend = _backend(args)
    validator = _validator(args, backend)
    if task0 is None:
        if validator is None:  # sim: with no task the simulator has nothing to judge by
            from policy.validators import make_validator

            validator = make_validator("self", backend=backend, adapter=not args.no_adapter)
        print(f"{unnamed}\nThe model runs it anyway, on the free table; {validator.name} validator judges each subtask "
              "(no simulated task, so no ground-truth success).", file=sys.stderr)
    freeze_long_lived_objects()  # the model and its libraries live until exit: spare them the GC's full passes
    codec = getattr(backend, "codec", None) or VerbalizedCodec()
    try:
        sim = SimRobot(SimConfig(image_size=args.image_size), seed=args.seed, task=task0)
    except ValueError as e:
        raise CLIError(str(e)) from None
    sim.connect()
    printer = Printer(args.quiet)
    rows = []
    try:
        for k in range(args.episodes):
            seed = args.seed + k
            task = task0 if (args.instruction or k == 0) else make_task(args.task, seed=seed)
            if task is None:
                sim.reset(seed)
                ep_backend, ep_validator = backend, validator
            else:
                ep = sim_episode(sim, task, seed=seed, backend=backend, validator=validator, chars_per_s=args.pace)
                ep_backend, ep_validator = ep.backend, ep.validator
            instruction = args.instruction or task.instruction(lang)
            cfg = LoopConfig(
                max_retries=args.max_retries, step_through=args.step_through, constrained=not args.unconstrained,
                codec=codec, adapter=not args.no_adapter, log_dir=args.log_dir, observe_steps=not args.pose_only_steps,
            )
            loop = ClosedLoop(sim, ep_backend, ep_validator, cfg)
            t0 = time.perf_counter()
            done: EpisodeDone | None = None
            for e in loop.run(instruction, seed=seed):
                printer(e)
                if isinstance(e, AwaitingUser) and e.what == "execute":
                    _step_through_input(loop, e)
                if isinstance(e, EpisodeDone):
                    done = e
            assert done is not None
            truth = None if task is None else bool(task.success(sim))
            rows.append((k + 1, seed, instruction, truth, done, time.perf_counter() - t0))
    finally:
        sim.disconnect()

    print()
    print(f"{'ep':>3} {'seed':>5} {'success':>8} {'loop':>5} {'subtasks':>8} {'retries':>7} {'rejected':>8} {'time_s':>7}  instruction")
    for k, seed, instruction, truth, done, secs in rows:
        said = "—" if truth is None else "yes" if truth else "no"
        print(f"{k:>3} {seed:>5} {said:>8} {('ok' if done.success else 'fail'):>5} "
              f"{done.subtasks_done:>8} {done.retries:>7} {done.rejected:>8} {secs:>7.2f}  {instruction}")
    if task0 is None:
        n_ok = sum(1 for r in rows if r[4].success)
        print(f"loop success: {n_ok}/{len(rows)}  [the {validator.name} validator's verdicts; no simulated task to check]")
        return 0 if n_ok == len(rows) else 1
    n_ok = sum(1 for r in rows if r[3])
    print(f"success: {n_ok}/{len(rows)} ({100.0 * n_ok / len(rows):.0f}%)  [ground truth from the simulated task]")
    return 0 if n_ok == len(rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
