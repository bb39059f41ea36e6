"""Visual question answering on the policy's own model and weights — the point of VLM2VLA.

    from policy.vqa import VQA
    vqa = VQA(backend)                                        # the same hf/openai backend the loop uses
    for piece in vqa.ask(image, "What is left of the carrot?"):   # streams text
        print(piece, end="")
    vqa.ask(image, question, adapter=False)                  # the base model, same weights in memory

`ask(image, question, adapter=True, backend=...)` is the same as a function. The returned
TextStream has `.stats` (prefill_s, decode_s, tokens) once drained, and `.text()` drains it.
"""

from __future__ import annotations

from typing import Any

from policy.backends import BackendError, TextStream
from policy.prompts import user_message

__all__ = ["VQA", "ask"]


class VQA:
    def __init__(self, backend: Any, max_new_tokens: int = 256) -> None:
        if getattr(backend, "name", None) == "scripted":
            raise BackendError("the scripted backend has no language model to answer questions; load one with --policy hf or openai")
        self.backend, self.max_new_tokens = backend, max_new_tokens

    def ask(self, image: Any, question: str, adapter: bool = True, max_new_tokens: int | None = None) -> TextStream:
        if not str(question).strip():
            raise ValueError("ask a question: the text is empty")
        images = [] if image is None else [image]
        message = user_message(str(question).strip(), images=len(images))
        return self.backend.generate([message], images, "vqa", adapter=adapter, max_new_tokens=max_new_tokens or self.max_new_tokens)


def ask(image: Any, question: str, adapter: bool = True, *, backend: Any, max_new_tokens: int = 256) -> TextStream:
    """Stream the model's answer to `question` about `image` (adapter=False: the base model)."""
    return VQA(backend, max_new_tokens).ask(image, question, adapter=adapter)
