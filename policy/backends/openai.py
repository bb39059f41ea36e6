"""The `openai` backend: any OpenAI-compatible chat-completions server, above all vLLM.

    backend = OpenAIBackend(server="http://127.0.0.1:8000", model="vlm2vla")
    for piece in backend.generate(messages, [image], "actions", constraint_regex=regex): ...

- Images go as base64 PNG data URLs (`{"type": "image_url", "image_url": {"url": "data:..."}}`)
  in place of the `{"type": "image"}` placeholders of `policy.prompts`.
- Text streams over SSE (`stream: true`, `stream_options.include_usage` for the token count).
- The action stage is sent with `structured_outputs: {"regex": ...}` — vLLM's current field
  (the old `guided_*` fields are silently ignored by current vLLM, so they are never sent).
- `model` is the served LoRA name (`--lora-modules vlm2vla=ADAPTER`); `adapter=False` asks
  the base model instead: `base_model`, or the LoRA's `parent` from `GET /v1/models`.
- Timeouts (connect, read) and retries with back-off for connection errors, 429 and 5xx
  before any text has arrived; errors are one line naming the server and the fix.
"""

from __future__ import annotations

import base64
import io
import json
import time
from typing import Any, Iterator, Sequence

import numpy as np

from policy.backends import BackendError, TextStream

__all__ = ["OpenAIBackend", "to_openai_messages", "data_url"]

_RETRY_STATUS = {408, 429, 500, 502, 503, 504}


def data_url(image: Any) -> str:
    """An RGB array or PIL image as a base64 PNG data URL."""
    from PIL import Image

    img = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image, dtype=np.uint8))
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def to_openai_messages(messages: Sequence[dict[str, Any]], images: Sequence[Any]) -> list[dict[str, Any]]:
    """policy.prompts messages (image placeholders) + images -> chat-completions messages."""
    images = list(images)
    out = []
    used = 0
    for m in messages:
        content = m.get("content")
        if isinstance(content, str):
            out.append({"role": m["role"], "content": content})
            continue
        parts = []
        for c in content or []:
            if c.get("type") == "image":
                if used >= len(images):
                    raise BackendError(f"the messages hold more image placeholders than the {len(images)} images given")
                parts.append({"type": "image_url", "image_url": {"url": data_url(images[used])}})
                used += 1
            elif c.get("type") == "text":
                parts.append({"type": "text", "text": c["text"]})
        out.append({"role": m["role"], "content": parts})
    if used != len(images):
        raise BackendError(f"{len(images)} images were given but the messages hold {used} image placeholders")
    return out


class OpenAIBackend:
    name = "openai"

    def __init__(
        self,
        server: str,
        model: str = "vlm2vla",
        base_model: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 120.0,
        connect_timeout_s: float = 5.0,
        retries: int = 2,
        backoff_s: float = 0.5,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
    ) -> None:
        import httpx

        if not server or not server.startswith(("http://", "https://")):
            raise BackendError(f"--server must be an http(s) URL such as http://127.0.0.1:8000, got {server!r}")
        base = server.rstrip("/")
        self.base_url = base if base.endswith("/v1") else base + "/v1"
        self.model, self.base_model = model, base_model
        self.retries, self.backoff_s = int(retries), float(backoff_s)
        self.max_new_tokens, self.temperature = max_new_tokens, temperature
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s), headers=headers)
        self._httpx = httpx

    def close(self) -> None:
        self._client.close()

    # ------------------------------------------------------------------ helpers
    def models(self) -> list[dict[str, Any]]:
        r = self._request("GET", "/models")
        return list(r.json().get("data", []))

    def resolve_base_model(self) -> str:
        if self.base_model:
            return self.base_model
        entries = self.models()
        for e in entries:
            if e.get("id") == self.model and e.get("parent"):
                self.base_model = str(e["parent"])
                return self.base_model
        others = [e.get("id") for e in entries if e.get("id") != self.model]
        if len(others) == 1:
            self.base_model = str(others[0])
            return self.base_model
        raise BackendError(
            f"{self.base_url}: cannot tell which served model is the base of {self.model!r} (models: {[e.get('id') for e in entries]}); pass --base-model"
        )

    def _request(self, method: str, path: str, **kw: Any):
        httpx = self._httpx
        url = self.base_url + path
        for attempt in range(self.retries + 1):
            try:
                r = self._client.request(method, url, **kw)
            except (httpx.ConnectError, httpx.TimeoutException, httpx.RemoteProtocolError) as e:
                if attempt < self.retries:
                    time.sleep(self.backoff_s * 2**attempt)
                    continue
                raise BackendError(f"cannot reach the model server at {self.base_url} ({type(e).__name__}); is `vllm serve` running there?") from None
            if r.status_code in _RETRY_STATUS and attempt < self.retries:
                time.sleep(self.backoff_s * 2**attempt)
                continue
            if r.status_code >= 400:
                raise BackendError(f"model server {url} answered {r.status_code}: {_error_message(r.text)}")
            return r
        raise AssertionError("unreachable")

    # ------------------------------------------------------------------ Backend
    def request_body(
        self, messages: Sequence[dict[str, Any]], images: Sequence[Any], constraint_regex: str | None, adapter: bool, max_new_tokens: int | None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model if adapter else self.resolve_base_model(),
            "messages": to_openai_messages(messages, images),
            "stream": True,
            "stream_options": {"include_usage": True},
            "temperature": self.temperature,
            "max_tokens": int(max_new_tokens or self.max_new_tokens),
        }
        if constraint_regex is not None:
            body["structured_outputs"] = {"regex": constraint_regex}
        return body

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
        t0 = time.perf_counter()
        body = self.request_body(messages, images, constraint_regex, adapter, max_new_tokens)
        return TextStream(self._stream(body), t0=t0)

    def _stream(self, body: dict[str, Any]) -> Iterator[str | int]:
        httpx = self._httpx
        url = self.base_url + "/chat/completions"
        for attempt in range(self.retries + 1):
            got_text = False
            try:
                with self._client.stream("POST", url, json=body) as r:
                    if r.status_code >= 400:
                        text = r.read().decode("utf-8", "replace")
                        if r.status_code in _RETRY_STATUS and attempt < self.retries:
                            time.sleep(self.backoff_s * 2**attempt)
                            continue
                        raise BackendError(f"model server {url} answered {r.status_code}: {_error_message(text)}")
                    for line in r.iter_lines():
                        if not line.startswith("data:"):
                            continue
                        data = line[5:].strip()
                        if data == "[DONE]":
                            return
                        try:
                            chunk = json.loads(data)
                        except json.JSONDecodeError:
                            raise BackendError(f"model server {url} sent a malformed stream event: {data[:80]!r}") from None
                        if "error" in chunk:
                            raise BackendError(f"model server {url}: {_error_message(json.dumps(chunk))}")
                        usage = chunk.get("usage")
                        for choice in chunk.get("choices") or []:
                            piece = (choice.get("delta") or {}).get("content")
                            if piece:
                                got_text = True
                                yield piece
                        if usage and usage.get("completion_tokens") is not None:
                            yield int(usage["completion_tokens"])
                    return
            except (httpx.ConnectError, httpx.TimeoutException, httpx.RemoteProtocolError, httpx.ReadError) as e:
                if not got_text and attempt < self.retries:
                    time.sleep(self.backoff_s * 2**attempt)
                    continue
                where = "mid-stream" if got_text else "before any text"
                raise BackendError(f"model server {url}: {type(e).__name__} {where}; is `vllm serve` running and reachable?") from None


def _error_message(text: str) -> str:
    try:
        data = json.loads(text)
        err = data.get("error", data)
        msg = err.get("message") if isinstance(err, dict) else str(err)
        return str(msg or text)[:300]
    except (json.JSONDecodeError, AttributeError):
        return text.strip().splitlines()[0][:300] if text.strip() else "(empty body)"
