"""How close a model's action blocks are to the expert's, on D_lan records (no simulator).

For each record the model answers the stage-2 prompt exactly as the policy loop asks it
(same prompt with the gripper position, same grammar constraint, greedy); the block's
commands are summed and compared with the record's true net displacement:

    error_cm = |sum of the block's moves - displacement| (Euclidean, centimetres)

A model that learned nothing writes grammatical blocks of arbitrary length and direction;
one that learned writes the expert's. `ActionProbe.mean_error_cm` is what the micro recipe's
test asserts on, and what its card reports.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from policy.backends import bounded_block_regex
from policy.language import ActionParseError
from policy.prompts import PromptFormatError, action_prompt, action_stage_regex, parse_plan_actions, user_message


@dataclass(frozen=True)
class ActionProbe:
    """Per-record results of `probe_actions`."""

    errors_cm: tuple[float, ...]  # NaN where the answer did not parse
    texts: tuple[str, ...]

    @property
    def parse_rate(self) -> float:
        return float(np.mean([not np.isnan(e) for e in self.errors_cm])) if self.errors_cm else 0.0

    @property
    def mean_error_cm(self) -> float:
        ok = [e for e in self.errors_cm if not np.isnan(e)]
        return float(np.mean(ok)) if ok else float("inf")


def probe_actions(backend: Any, records: Sequence[dict], root: str | Path, adapter: bool = True,
                  max_steps: int = 8, max_new_tokens: int = 400) -> ActionProbe:
    """Ask `backend` (policy.backends.hf.HFBackend) for each record's block; compare with the record."""
    from PIL import Image

    codec = backend.codec
    regex = action_stage_regex(bounded_block_regex(codec.regex, max_steps))
    errors, texts = [], []
    for r in records:
        prompt = action_prompt(r["instruction"], r["subtasks"], r["step"], ee=r.get("state"))
        image = Image.open(Path(root) / r["image"]).convert("RGB")
        text = backend.generate([user_message(prompt)], [image], "actions", constraint_regex=regex,
                                adapter=adapter, max_new_tokens=max_new_tokens).text()
        texts.append(text)
        try:
            steps = codec.decode(parse_plan_actions(text).actions)
        except (ActionParseError, PromptFormatError):
            errors.append(float("nan"))
            continue
        total = np.sum([c.delta for step in steps for c in step], axis=0) if steps else np.zeros(3)
        errors.append(float(np.linalg.norm(np.asarray(total) - np.asarray(r["displacement"])) * 100.0))
    return ActionProbe(tuple(errors), tuple(texts))
