"""The `hf` backend: a Gemma 3 VLM in-process with transformers, streaming, greedy by default.

    backend = HFBackend.from_pretrained("google/gemma-3-12b-it", adapter="run/")  # or a tiny/ folder
    for piece in backend.generate(messages, [image], "actions", constraint_regex=regex): ...

- The model comes from `policy.model.load_model` (base + LoRA adapter, kept separate), so
  `adapter=False` answers as the base model from the same weights in memory (PEFT's
  `disable_adapter()` around that one call).
- A `constraint_regex` is compiled once per regex by xgrammar against the tokenizer and
  applied as a logits processor: the model can only write text the regex matches, and
  after a complete match only an end-of-turn token.
- Text streams through transformers' `TextIteratorStreamer`; generation runs in a worker
  thread and one generation at a time holds the model (a lock). `stats` after the stream
  ends: prefill_s (to the first generated token), decode_s, tokens.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any, Iterator, Sequence

import numpy as np

from policy.backends import BackendError, TextStream
from policy.language import ActionCodec, VerbalizedCodec

__all__ = ["HFBackend"]


def _pil(image: Any):
    from PIL import Image

    if isinstance(image, Image.Image):
        return image.convert("RGB")
    a = np.asarray(image)
    if a.ndim != 3 or a.shape[2] != 3:
        raise BackendError(f"images must be (H, W, 3) RGB arrays or PIL images, got shape {a.shape}")
    return Image.fromarray(a.astype(np.uint8))


class HFBackend:
    name = "hf"

    def __init__(self, model: Any, processor: Any, codec: ActionCodec | None = None, max_new_tokens: int = 256) -> None:
        import torch

        self.model = model
        self.processor = processor
        self.tokenizer = getattr(processor, "tokenizer", processor)
        self.codec = codec or VerbalizedCodec()
        self.max_new_tokens = max_new_tokens
        self._lock = threading.Lock()
        self._grammars: dict[str, Any] = {}
        self._compiler = None
        self.device = next(model.parameters()).device
        self._torch = torch
        gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
        eos = [gen_eos] if isinstance(gen_eos, int) else list(gen_eos or [])
        for tok in ("<end_of_turn>", self.tokenizer.eos_token):
            tid = self.tokenizer.convert_tokens_to_ids(tok) if tok else None
            if isinstance(tid, int) and tid >= 0 and tid != self.tokenizer.unk_token_id and tid not in eos:
                eos.append(tid)
        self.eos_token_ids = eos

    @classmethod
    def from_pretrained(cls, model: str, adapter: str | None = None, **kwargs: Any) -> "HFBackend":
        from policy.model import load_model

        max_new_tokens = kwargs.pop("max_new_tokens", 256)
        lm = load_model(model, adapter=adapter, **kwargs)
        return cls(lm.model, lm.processor, codec=lm.codec, max_new_tokens=max_new_tokens)

    @property
    def has_adapter(self) -> bool:
        return hasattr(self.model, "disable_adapter") and hasattr(self.model, "peft_config")

    # ------------------------------------------------------------------ grammar
    def _vocab_size(self) -> int:
        cfg = self.model.config
        text_cfg = getattr(cfg, "text_config", None) or getattr(cfg, "get_text_config", lambda: cfg)()
        size = getattr(text_cfg, "vocab_size", None) or getattr(cfg, "vocab_size", None)
        return int(max(size or 0, len(self.tokenizer)))

    def compiled_grammar(self, regex: str) -> Any:
        """xgrammar's compiled form of `regex` for this tokenizer (cached)."""
        import xgrammar as xgr

        if regex not in self._grammars:
            if self._compiler is None:
                info = xgr.TokenizerInfo.from_huggingface(self.tokenizer, vocab_size=self._vocab_size(), stop_token_ids=self.eos_token_ids)
                self._compiler = xgr.GrammarCompiler(info)
            self._grammars[regex] = self._compiler.compile_regex(regex)
        return self._grammars[regex]

    # ------------------------------------------------------------------ inputs
    def encode(self, messages: Sequence[dict[str, Any]], images: Sequence[Any]) -> dict[str, Any]:
        n_placeholders = sum(1 for m in messages for c in (m.get("content") or []) if isinstance(c, dict) and c.get("type") == "image")
        if n_placeholders != len(images):
            raise BackendError(f"the messages hold {n_placeholders} image placeholders but {len(images)} images were given")
        prompt = self.processor.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=False)
        kwargs: dict[str, Any] = {"text": prompt, "return_tensors": "pt"}
        if images:
            kwargs["images"] = [_pil(im) for im in images]
        inputs = self.processor(**kwargs)
        return {k: (v.to(self.device) if hasattr(v, "to") else v) for k, v in inputs.items()}

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
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        torch = self._torch
        t0 = time.perf_counter()
        inputs = self.encode(messages, images)
        processors = []
        if constraint_regex is not None:
            import xgrammar as xgr

            processors.append(xgr.contrib.hf.LogitsProcessor(self.compiled_grammar(constraint_regex)))
        cancel = threading.Event()
        marks: dict[str, float] = {}
        count = [0]

        class _Streamer(TextIteratorStreamer):
            def put(self, value):  # first call: the prompt; then one token per step
                if "start" in marks:
                    count[0] += int(value.numel()) if value.dim() <= 1 else int(value.shape[-1])
                    now = time.perf_counter()
                    marks.setdefault("first", now)
                    marks["last"] = now
                else:
                    marks["start_put"] = time.perf_counter()
                    marks["start"] = marks["start_put"]
                super().put(value)

        class _Cancel(StoppingCriteria):
            def __call__(self, input_ids, scores, **kw):
                return torch.full((input_ids.shape[0],), cancel.is_set(), dtype=torch.bool, device=input_ids.device)

        streamer = _Streamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=600.0)
        gen_kwargs = dict(
            **inputs,
            max_new_tokens=int(max_new_tokens or self.max_new_tokens),
            do_sample=False,
            streamer=streamer,
            eos_token_id=self.eos_token_ids,
            pad_token_id=self.tokenizer.pad_token_id,
            logits_processor=processors or None,
            stopping_criteria=StoppingCriteriaList([_Cancel()]),
        )
        error: list[BaseException] = []
        if not self._lock.acquire(timeout=600):
            raise BackendError("the hf backend is busy with another generation (waited 10 minutes)")

        def work() -> None:
            # adapter=False answers as the base model; with no adapter loaded the base is all there is
            ctx = self.model.disable_adapter() if (not adapter and self.has_adapter) else contextlib.nullcontext()
            try:
                with ctx, torch.inference_mode():
                    self.model.generate(**gen_kwargs)
            except BaseException as e:  # surfaced in the consumer's thread
                error.append(e)
                streamer.end()

        thread = threading.Thread(target=work, name=f"hf-generate-{stage}", daemon=True)
        thread.start()

        def pieces() -> Iterator[str | int]:
            for piece in streamer:
                yield piece
            thread.join()
            if error:
                e = error[0]
                raise BackendError(f"hf generation failed ({stage}): {type(e).__name__}: {e}") from e

        released = [False]

        def finish() -> None:
            cancel.set()
            thread.join()
            if not released[0]:
                released[0] = True
                self._lock.release()
            first = marks.get("first")
            if first is not None:
                stream.stats.prefill_s = first - t0
                stream.stats.decode_s = marks["last"] - first
            stream.stats.tokens = count[0]

        stream = TextStream(pieces(), on_close=finish, t0=t0)
        return stream
