"""The prompts and output formats of the three stages — the only definition.

The model is trained on exactly this text (training/ builds its samples here) and the
policy parses exactly this text at run time. Change a format here and both follow.

Stage 1, subtasks (first image + instruction):
    user:      <image> Instruction: put the carrot on the plate
               List the subtasks needed to carry out the instruction, one per line.
    assistant: 1. reach for the carrot
               2. grasp the carrot
               ...
Stage 2, plan + action block for one subtask (current image):
    user:      <image> Instruction: put the carrot on the plate
               Subtasks: 1. reach for the carrot; 2. grasp the carrot; ...
               Current subtask (2): grasp the carrot
               Give the motion plan, then the actions.
    assistant: Plan: move down and slightly forward, then close the gripper
               Actions: [[move forward 1.4 cm, move down 2.5 cm], [close gripper]]
Stage 3, validator (image after the attempt):
    user:      <image> Subtask: grasp the carrot
               Is this subtask complete in the image? Answer yes or no, then a short reason.
    assistant: yes: the carrot is between the closed fingers

Messages use the Gemma 3 / transformers chat layout:
    {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": ...}]}
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Sequence

from policy.language import ACTION_REGEX

__all__ = [
    "PromptFormatError",
    "subtasks_prompt",
    "action_prompt",
    "format_position",
    "validator_prompt",
    "user_message",
    "assistant_message",
    "chat_sample",
    "format_subtasks",
    "parse_subtasks",
    "format_plan_actions",
    "parse_plan_actions",
    "PlanActions",
    "ACTIONS_PREFIX",
    "PLAN_PREFIX",
    "action_stage_regex",
    "actions_start",
    "subtasks_regex",
    "format_verdict",
    "parse_verdict",
    "verdict_regex",
    "Verdict",
]

PLAN_PREFIX = "Plan: "
ACTIONS_PREFIX = "Actions: "
MAX_SUBTASKS = 12


class PromptFormatError(ValueError):
    """Model output that does not follow a stage's format; names what was expected."""


# --------------------------------------------------------------------------- prompts


def subtasks_prompt(instruction: str) -> str:
    return f"Instruction: {_one_line(instruction)}\nList the subtasks needed to carry out the instruction, one per line."


def action_prompt(instruction: str, subtasks: Sequence[str], index: int, ee: Sequence[float] | None = None) -> str:
    """The stage-2 prompt; `ee` (the end-effector position, metres, base frame) adds a line
    'Gripper at: x 25.0 cm, y 0.0 cm, z 16.0 cm' before the request.

    The policy loop always passes the observed position and D_lan samples their recorded
    `state`, so models are trained and run with it (a departure from the paper's prompt: a
    small model cannot read centimetres off a 64-pixel image; see README, design notes).
    """
    if not 0 <= index < len(subtasks):
        raise IndexError(f"subtask index {index} is outside the {len(subtasks)} subtasks")
    listing = "; ".join(f"{i + 1}. {_one_line(s)}" for i, s in enumerate(subtasks))
    where = "" if ee is None else f"{format_position(ee)}\n"
    return (
        f"Instruction: {_one_line(instruction)}\n"
        f"Subtasks: {listing}\n"
        f"Current subtask ({index + 1}): {_one_line(subtasks[index])}\n"
        f"{where}"
        "Give the motion plan, then the actions."
    )


def format_position(ee: Sequence[float]) -> str:
    """'Gripper at: x 25.0 cm, y 0.0 cm, z 16.0 cm' for an end-effector position in metres."""
    x, y, z = (float(v) * 100.0 for v in list(ee)[:3])
    return f"Gripper at: x {x:.1f} cm, y {y:.1f} cm, z {z:.1f} cm".replace("-0.0 cm", "0.0 cm")


def validator_prompt(subtask: str) -> str:
    return f"Subtask: {_one_line(subtask)}\nIs this subtask complete in the image? Answer yes or no, then a short reason."


def _one_line(s: str) -> str:
    return " ".join(str(s).split())


# --------------------------------------------------------------------------- chat messages


def user_message(text: str, images: int = 1) -> dict[str, Any]:
    """A user turn with `images` image placeholders before the text (Gemma 3 layout)."""
    return {"role": "user", "content": [{"type": "image"}] * images + [{"type": "text", "text": text}]}


def assistant_message(text: str) -> dict[str, Any]:
    return {"role": "assistant", "content": [{"type": "text", "text": text}]}


def chat_sample(prompt: str, answer: str, image: Any) -> dict[str, Any]:
    """One training sample in the layout TRL's SFTTrainer takes for VLMs: messages + images."""
    return {"messages": [user_message(prompt), assistant_message(answer)], "images": [image]}


# --------------------------------------------------------------------------- stage 1


def format_subtasks(subtasks: Sequence[str]) -> str:
    if not subtasks:
        raise ValueError("a task needs at least one subtask")
    return "\n".join(f"{i + 1}. {_one_line(s)}" for i, s in enumerate(subtasks))


_NUMBERED = re.compile(r"^\s*(\d+)[.)]\s*(\S.*?)\s*$")


def parse_subtasks(text: str) -> list[str]:
    """'1. reach for the carrot\\n2. grasp the carrot' -> ['reach for the carrot', 'grasp the carrot'].

    Lenient: blank lines and '1)' numbering are fine; unnumbered lines are ignored.
    Raises PromptFormatError when no numbered line is found or numbering skips.
    """
    items = []
    for line in text.splitlines():
        m = _NUMBERED.match(line)
        if m:
            if int(m.group(1)) != len(items) + 1:
                raise PromptFormatError(
                    f"subtask list: expected item {len(items) + 1} but found {m.group(1)} in {line.strip()!r}"
                )
            items.append(m.group(2))
    if not items:
        raise PromptFormatError(f"subtask list: expected lines like '1. grasp the carrot', found {text[:60]!r}")
    return items[:MAX_SUBTASKS]


def subtasks_regex(max_subtasks: int = 8, max_chars: int = 60) -> str:
    """A subtask list as a regex for constrained decoding: '1. ...' then optionally '2. ...', numbered in order."""
    item = r"[a-z][a-z0-9 ,'-]{0," + str(max_chars - 1) + r"}"
    out = ""
    for n in range(min(max_subtasks, MAX_SUBTASKS), 1, -1):
        out = r"(?:\n" + str(n) + r"\. " + item + out + r")?"
    return r"1\. " + item + out


# --------------------------------------------------------------------------- stage 2


@dataclass(frozen=True)
class PlanActions:
    plan: str
    actions: str  # the action block text, as written (parse it with the codec)


def format_plan_actions(plan: str, actions: str) -> str:
    return f"{PLAN_PREFIX}{_one_line(plan)}\n{ACTIONS_PREFIX}{actions}"


def parse_plan_actions(text: str) -> PlanActions:
    """Split 'Plan: ...\\nActions: [...]' into its two parts (the block itself is not parsed here)."""
    plan_at = text.find(PLAN_PREFIX.strip())
    actions_at = text.find(ACTIONS_PREFIX.strip())
    if plan_at < 0:
        raise PromptFormatError(f"plan stage: expected '{PLAN_PREFIX.strip()}' at the start, found {text[:40]!r}")
    if actions_at < 0 or actions_at < plan_at:
        raise PromptFormatError(f"plan stage: expected a line starting '{ACTIONS_PREFIX.strip()}' after the plan, found {text[:80]!r}")
    plan = text[plan_at + len(PLAN_PREFIX.strip()) : actions_at].strip()
    actions = text[actions_at + len(ACTIONS_PREFIX.strip()) :].strip()
    return PlanActions(plan=plan, actions=actions)


def action_stage_regex(action_regex: str = ACTION_REGEX, max_plan_chars: int = 160) -> str:
    """The whole stage-2 answer as a regex for constrained decoding: free plan text, then a valid block."""
    return PLAN_PREFIX + r"[a-z ,]{1," + str(max_plan_chars) + r"}\n" + ACTIONS_PREFIX + action_regex


def actions_start(text: str) -> int:
    """Where the actions part ('Actions: ...') of a stage-2 answer begins in `text`, a prefix of the
    answer as it streams in; -1 while the text is still the plan. The newline before it ends the plan."""
    marker = ACTIONS_PREFIX.strip()
    at = text.find("\n" + marker)
    if at >= 0:
        return at + 1
    return 0 if text.startswith(marker) else -1


# --------------------------------------------------------------------------- stage 3


@dataclass(frozen=True)
class Verdict:
    done: bool
    reason: str


def format_verdict(done: bool, reason: str) -> str:
    return f"{'yes' if done else 'no'}: {_one_line(reason)}"


def verdict_regex(max_reason_chars: int = 100) -> str:
    """What format_verdict writes, as a regex for constrained decoding: 'yes: ...' or 'no: ...'."""
    return r"(yes|no): [a-z ,]{1," + str(max_reason_chars) + r"}"


_VERDICT = re.compile(r"^\W*(yes|no)\b\W*(.*)$", re.IGNORECASE | re.DOTALL)


def parse_verdict(text: str) -> Verdict:
    """'yes: the carrot is held' -> Verdict(True, 'the carrot is held'). Raises PromptFormatError otherwise."""
    m = _VERDICT.match(text.strip())
    if not m:
        raise PromptFormatError(f"validator: expected an answer starting 'yes' or 'no', found {text[:40]!r}")
    return Verdict(done=m.group(1).lower() == "yes", reason=_one_line(m.group(2)))
