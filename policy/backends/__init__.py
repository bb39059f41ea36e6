"""Policy backends: one small interface, all streaming text.

    stream = backend.generate(messages, images, stage, constraint_regex=None, adapter=True)
    for piece in stream:          # str pieces as the model writes them
        print(piece, end="")
    stream.stats                  # GenerationStats: prefill_s, decode_s, tokens, text (after the end)

`messages` are chat turns in the Gemma 3 layout of `policy.prompts` (image placeholders
`{"type": "image"}` in the content), `images` the RGB arrays (H, W, 3 uint8) or PIL
images for those placeholders, in order. `stage` is one of policy.events.Stage.
`constraint_regex` (the action stage: `policy.prompts.action_stage_regex(codec.regex)`)
asks the backend to decode only text the regex matches: the `hf` backend uses an
xgrammar logits processor, `openai` sends vLLM's `structured_outputs: {"regex": ...}`.
`adapter=False` answers as the base model from the same weights in memory.
`context` carries what a ground-truth backend needs (`{"index": subtask index}`).

Backends:
    hf        `policy.backends.hf.HFBackend`         transformers in-process
    openai    `policy.backends.openai.OpenAIBackend` any OpenAI-compatible server (vLLM)
    scripted  `policy.backends.scripted.ScriptedBackend` the simulator expert's ground truth
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Protocol, Sequence, runtime_checkable

__all__ = ["Backend", "GenerationStats", "TextStream", "BackendError", "bounded_block_regex", "make_backend"]


class BackendError(RuntimeError):
    """A backend could not produce text (server down, bad model path); the message names the fix."""


@dataclass
class GenerationStats:
    """Timings of one generation. prefill_s: request to first token; decode_s: first to last token."""

    prefill_s: float = 0.0
    decode_s: float = 0.0
    tokens: int = 0
    text: str = ""
    finished: bool = False  # the generation ran to its end (not cut off by the consumer)

    @property
    def total_s(self) -> float:
        return self.prefill_s + self.decode_s


class TextStream:
    """An iterator of text pieces; `stats` is complete once the iterator is exhausted.

    `source` yields str pieces, or ints to report the token count so far (not passed on).
    A backend that knows its own prefill/decode split may set `stats` fields itself.
    """

    def __init__(self, source: Iterator[str | int], on_close: Callable[[], None] | None = None, t0: float | None = None) -> None:
        self._source = source
        self._on_close = on_close
        self.stats = GenerationStats()
        self._t0 = time.perf_counter() if t0 is None else t0  # when the request began (prompt building counts as prefill)
        self._first: float | None = None
        self._parts: list[str] = []
        self._own_tokens = True
        self._done = False

    def __iter__(self) -> "TextStream":
        return self

    def __next__(self) -> str:
        while True:
            try:
                piece = next(self._source)
            except StopIteration:
                self._finish(True)
                raise
            except BaseException:
                self._finish(False)
                raise
            if isinstance(piece, int):
                self.stats.tokens = piece
                self._own_tokens = False
                continue
            if not piece:
                continue
            now = time.perf_counter()
            if self._first is None:
                self._first = now
                self.stats.prefill_s = now - self._t0
            self.stats.decode_s = now - self._first
            self._parts.append(piece)
            if self._own_tokens:
                self.stats.tokens += 1
            return piece

    def _finish(self, finished: bool) -> None:
        if self._done:
            return
        self._done = True
        self.stats.text = "".join(self._parts)
        self.stats.finished = finished
        if self._first is None:
            self.stats.prefill_s = time.perf_counter() - self._t0
        if self._on_close is not None:
            self._on_close()
            self._on_close = None

    def close(self) -> None:
        """Stop early (the consumer is done); frees the backend. Harmless after the end."""
        if self._done:
            return
        close = getattr(self._source, "close", None)
        if close is not None:
            close()
        self._finish(False)

    def __enter__(self) -> "TextStream":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def text(self) -> str:
        """Drain the stream and return the whole text."""
        for _ in self:
            pass
        return self.stats.text


@runtime_checkable
class Backend(Protocol):
    name: str

    def generate(
        self,
        messages: Sequence[dict[str, Any]],
        images: Sequence[Any],
        stage: str,
        constraint_regex: str | None = None,
        adapter: bool = True,
        max_new_tokens: int | None = None,
        context: dict[str, Any] | None = None,
    ) -> TextStream: ...


def bounded_block_regex(regex: str, max_steps: int = 16, max_commands: int = 4) -> str:
    """Bound the repetitions of an action-block regex so constrained decoding always ends.

    The codec grammars end each step with `(?:, CMD)*\\]` and the block with
    `(?:, STEP)*)?\\]`; a model that never closes a bracket would write until its token
    budget runs out and leave a truncated block. Bounded, a block fits the budget.
    """
    out, n = re.subn(r"\)\*\)\?\\\]$", "){0," + str(max_steps - 1) + r"})?\\]", regex)
    if n != 1:
        raise ValueError("bounded_block_regex: the regex does not end like an action block '(?:, STEP)*)?\\]'")
    out = out.replace(r")*\]", "){0," + str(max_commands - 1) + r"}\]")
    return out


def make_backend(kind: str, **kwargs: Any) -> Backend:
    """'hf' (model=PATH, adapter=PATH), 'openai' (server=URL, model=NAME) or 'scripted' (expert=...)."""
    if kind == "hf":
        from policy.backends.hf import HFBackend

        return HFBackend.from_pretrained(**kwargs)
    if kind == "openai":
        from policy.backends.openai import OpenAIBackend

        return OpenAIBackend(**kwargs)
    if kind == "scripted":
        from policy.backends.scripted import ScriptedBackend

        return ScriptedBackend(**kwargs)
    raise ValueError(f"unknown policy backend {kind!r}; choose 'hf', 'openai' or 'scripted'")
