"""The scripted backend: speaks the three-stage text from the simulator expert's ground truth.

It needs no weights, so the demo and the CLI run offline. The expert
(`robot.sim.expert.ScriptedExpert`, passed in; policy does not import robot.sim) gives
`subtasks()` and `plan_segment(index) -> Segment(subtask, deltas (T, 3) m, gripper (T,))`
from the current simulator state; this backend writes them exactly as the model is trained
to: `format_subtasks`, then `Plan: <plan_phrase>` / `Actions: <verbalize_actions>`, with
the action block spelled by the codec. Text streams word by word at `chars_per_s`
(0 = as fast as possible, for tests).
"""

from __future__ import annotations

import re
import time
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from policy.backends import BackendError, TextStream
from policy.language import ActionCodec, VerbalizedCodec, parse_actions, plan_phrase, verbalize_actions
from policy.prompts import format_plan_actions, format_subtasks


class ScriptedBackend:
    name = "scripted"

    def __init__(
        self,
        expert: Any,
        chars_per_s: float = 300.0,
        codec: ActionCodec | None = None,
        gripper_command: Callable[[], float] | None = None,
    ) -> None:
        if expert is None or not hasattr(expert, "subtasks") or not hasattr(expert, "plan_segment"):
            raise BackendError("the scripted backend needs a simulator expert with subtasks() and plan_segment(index) (use --robot sim)")
        self.expert = expert
        self.chars_per_s = float(chars_per_s)
        self.codec = codec or VerbalizedCodec()
        # the *commanded* gripper (1 = open) before the segment: a gripper closed on a wide object
        # measures partly open, and the action language (like the training data) speaks commands
        self.gripper_command = gripper_command

    # ------------------------------------------------------------------ the text
    def subtasks_text(self) -> str:
        return format_subtasks(list(self.expert.subtasks()))

    def actions_text(self, index: int) -> str:
        seg = self.expert.plan_segment(index)
        deltas = np.asarray(seg.deltas, dtype=float).reshape(-1, 3)
        gripper = np.asarray(seg.gripper, dtype=float).reshape(-1)
        initial = None if self.gripper_command is None else float(self.gripper_command())
        block = verbalize_actions(deltas, gripper, initial_gripper=initial)
        steps = parse_actions(block)
        grips = [c.gripper for step in steps for c in step if c.gripper]
        plan = plan_phrase(deltas.sum(axis=0) if len(deltas) else np.zeros(3), grips[-1] if grips else None)
        return format_plan_actions(plan, self.codec.encode(block))

    # ------------------------------------------------------------------ Backend
    def generate(
        self,
        messages: Sequence[dict[str, Any]],
        images: Sequence[Any],
        stage: str,
        constraint_regex: str | None = None,
        adapter: bool = True,
        max_new_tokens: int | None = None,
        context: dict[str, Any] | None = None,
    ) -> TextStream:
        if stage == "subtasks":
            text = self.subtasks_text()
        elif stage in ("plan", "actions"):
            if not context or "index" not in context:
                raise BackendError("the scripted backend needs context={'index': subtask index} for the action stage")
            text = self.actions_text(int(context["index"]))
        else:
            raise BackendError(f"the scripted backend speaks only the policy stages, not {stage!r}; use --validator sim, and an hf/openai backend for VQA")
        return TextStream(self._paced(text))

    def _paced(self, text: str) -> Iterator[str]:
        for piece in re.findall(r"\S+\s*|\s+", text):
            if self.chars_per_s > 0:
                time.sleep(len(piece) / self.chars_per_s)
            yield piece
