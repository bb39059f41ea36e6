"""Validators: after an attempt at a subtask, is it done? Each gives a `Verdict(done, reason)`.

    v = make_validator("sim", check=lambda index: task.subtask_done(sim, index))
    gen = v.judge(image, subtask, index, instruction=..., should_stop=lambda: False)
    # a generator: yields text pieces (the self validator streams its answer), returns the Verdict

Kinds:
    gemini  Google Gemini (google-genai) sees the image and the subtask and answers a
            structured {done, reason} (response_schema). Default model gemini-2.5-pro;
            key from GEMINI_API_KEY / GOOGLE_API_KEY; `base_url` points it elsewhere.
    self    the same VLM answers `policy.prompts.validator_prompt` ('yes: ...' / 'no: ...').
    sim     the simulated task's ground truth (`check(index) -> bool`).
    manual  waits for a person: another thread (the web UI) calls `give(done, reason)`.
    none    always done (open loop).
The loop measures each verdict's latency and reports it in `VerdictGiven`.
"""

from __future__ import annotations

import io
import os
import queue
import threading
from typing import Any, Callable, Generator, Protocol, runtime_checkable

import numpy as np

from policy.prompts import PromptFormatError, Verdict, parse_verdict, user_message, validator_prompt, verdict_regex

__all__ = [
    "Validator",
    "ManualVerdicts",
    "ValidatorError",
    "NoneValidator",
    "SimValidator",
    "SelfValidator",
    "GeminiValidator",
    "ManualValidator",
    "make_validator",
]

Judgement = Generator[str, None, "Verdict | None"]


class ValidatorError(RuntimeError):
    """A validator could not answer (no key, server error); the message names the fix."""


class Validator(Protocol):
    name: str
    needs_user: bool

    def judge(
        self, image: np.ndarray, subtask: str, index: int, *, instruction: str = "", should_stop: Callable[[], bool] = lambda: False
    ) -> Judgement:
        """Yield text pieces, return the Verdict (None when stopped before answering)."""
        ...


@runtime_checkable
class ManualVerdicts(Protocol):
    """A validator a person answers (`manual`): `give(done, reason)` from any thread, e.g. a UI button."""

    def give(self, done: bool, reason: str = "") -> None: ...


class NoneValidator:
    name = "none"
    needs_user = False

    def judge(self, image, subtask, index, *, instruction="", should_stop=lambda: False) -> Judgement:
        return Verdict(True, "no validator: the subtask is assumed done")
        yield  # pragma: no cover  (makes this a generator)


class SimValidator:
    """Ground truth from the simulated task: `check(index)` says whether subtask `index` is done."""

    name = "sim"
    needs_user = False

    def __init__(self, check: Callable[[int], bool]) -> None:
        self.check = check

    @classmethod
    def for_task(cls, task: Any, sim: Any) -> "SimValidator":
        """Judge the i-th planned subtask by the task's i-th subtask (`task.subtask_done(sim, i)`);
        subtasks a model plans beyond the task's own count are judged by `task.success(sim)`."""
        n = len(task.subtasks(sim))
        return cls(lambda i: bool(task.subtask_done(sim, i)) if i < n else bool(task.success(sim)))

    def judge(self, image, subtask, index, *, instruction="", should_stop=lambda: False) -> Judgement:
        done = bool(self.check(index))
        return Verdict(done, f"simulator: '{subtask}' is {'done' if done else 'not done'}")
        yield  # pragma: no cover


class SelfValidator:
    """The policy's own VLM answers the validator prompt (constrained to 'yes: ...' / 'no: ...')."""

    name = "self"
    needs_user = False

    def __init__(self, backend: Any, adapter: bool = True, constrained: bool = True, max_new_tokens: int = 48) -> None:
        self.backend, self.adapter, self.constrained, self.max_new_tokens = backend, adapter, constrained, max_new_tokens

    def judge(self, image, subtask, index, *, instruction="", should_stop=lambda: False) -> Judgement:
        stream = self.backend.generate(
            [user_message(validator_prompt(subtask))],
            [image],
            "validator",
            constraint_regex=verdict_regex() if self.constrained else None,
            adapter=self.adapter,
            max_new_tokens=self.max_new_tokens,
        )
        with stream:
            for piece in stream:
                if should_stop():
                    return None
                yield piece
        try:
            return parse_verdict(stream.stats.text)
        except PromptFormatError as e:
            return Verdict(False, f"validator answer not understood ({e})")


class ManualValidator:
    """A person decides. The loop blocks in `judge` until `give(done, reason)` is called from any thread."""

    name = "manual"
    needs_user = True

    def __init__(self, poll_s: float = 0.05) -> None:
        self._answers: queue.Queue[Verdict] = queue.Queue()
        self._waiting = threading.Event()
        self.poll_s = poll_s

    @property
    def waiting(self) -> bool:
        """True while the loop waits for a verdict."""
        return self._waiting.is_set()

    def give(self, done: bool, reason: str = "") -> None:
        """The person's verdict (thread-safe). Given while nothing waits, it answers the next question."""
        self._answers.put(Verdict(bool(done), reason or ("marked done by the operator" if done else "marked not done by the operator")))

    def judge(self, image, subtask, index, *, instruction="", should_stop=lambda: False) -> Judgement:
        self._waiting.set()
        try:
            while True:
                if should_stop():
                    return None
                try:
                    return self._answers.get(timeout=self.poll_s)
                except queue.Empty:
                    continue
        finally:
            self._waiting.clear()
        yield  # pragma: no cover


def _png(image: Any) -> bytes:
    from PIL import Image

    img = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image, dtype=np.uint8))
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="PNG")
    return buf.getvalue()


GEMINI_PROMPT = (
    "You are checking a robot arm's progress. The overall instruction is: {instruction}\n"
    "The current subtask is: {subtask}\n"
    "Look at the image taken after the robot's attempt. Is the subtask complete? "
    "Answer with done (true or false) and a one-sentence reason that names what you see."
)


class GeminiValidator:
    """Gemini looks at the image and answers a structured {done, reason}."""

    name = "gemini"
    needs_user = False

    def __init__(
        self,
        model: str = "gemini-2.5-pro",
        api_key: str | None = None,
        base_url: str | None = None,
        timeout_s: float = 60.0,
        attempts: int = 3,
    ) -> None:
        from google import genai
        from google.genai import types

        key = api_key or os.environ.get("GEMINI_API_KEY") or os.environ.get("GOOGLE_API_KEY")
        if not key:
            raise ValidatorError("the gemini validator needs an API key: set GEMINI_API_KEY (or pass --gemini-key)")
        http = types.HttpOptions(
            base_url=base_url,
            api_version="v1beta",
            timeout=int(timeout_s * 1000),
            retry_options=types.HttpRetryOptions(attempts=attempts, initial_delay=0.2, max_delay=2.0),
        )
        self.model = model
        self._types = types
        self._client = genai.Client(api_key=key, http_options=http)

    def judge(self, image, subtask, index, *, instruction="", should_stop=lambda: False) -> Judgement:
        from pydantic import BaseModel

        class _Answer(BaseModel):
            done: bool
            reason: str

        types = self._types
        contents = [
            types.Part.from_bytes(data=_png(image), mime_type="image/png"),
            GEMINI_PROMPT.format(instruction=instruction or "(not given)", subtask=subtask),
        ]
        config = types.GenerateContentConfig(response_mime_type="application/json", response_schema=_Answer, temperature=0.0)
        try:
            response = self._client.models.generate_content(model=self.model, contents=contents, config=config)
        except Exception as e:  # network, auth, quota: one line naming the service
            raise ValidatorError(f"gemini validator ({self.model}): {type(e).__name__}: {str(e).splitlines()[0][:200]}") from e
        parsed = response.parsed
        if parsed is None:
            import json

            try:
                data = json.loads(response.text or "")
                parsed = _Answer(**data)
            except Exception as e:
                raise ValidatorError(f"gemini validator: the answer was not the {{done, reason}} JSON asked for: {(response.text or '')[:120]!r}") from e
        if isinstance(parsed, dict):
            parsed = _Answer(**parsed)
        text = f"{'yes' if parsed.done else 'no'}: {parsed.reason}"
        yield text
        return Verdict(bool(parsed.done), parsed.reason)


def make_validator(kind: str, **kwargs: Any) -> Validator:
    """'gemini' (model, api_key, base_url), 'self' (backend), 'sim' (check), 'manual', 'none'."""
    if kind == "none":
        return NoneValidator()
    if kind == "sim":
        if "check" not in kwargs:
            raise ValidatorError("the sim validator needs the simulated task (use --robot sim)")
        return SimValidator(kwargs["check"])
    if kind == "self":
        if kwargs.get("backend") is None:
            raise ValidatorError("the self validator needs the policy's model backend (hf or openai)")
        return SelfValidator(kwargs["backend"], **{k: v for k, v in kwargs.items() if k != "backend"})
    if kind == "manual":
        return ManualValidator()
    if kind == "gemini":
        return GeminiValidator(**kwargs)
    raise ValidatorError(f"unknown validator {kind!r}; choose gemini, self, sim, manual or none")
