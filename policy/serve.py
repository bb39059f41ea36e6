"""A small OpenAI-compatible chat-completions server over the `hf` backend (development and tests).

    python -m policy.serve --model tiny/ [--adapter run/] [--lora-name vlm2vla] [--port 8011]

It speaks the subset of the wire format the `openai` backend (and vLLM) uses: `GET /v1/models`
(the LoRA listed with `parent` = the base, as vLLM does), `POST /v1/chat/completions` with
base64 data-URL images, `stream` (SSE, `data: {...}` chunks, `data: [DONE]`),
`stream_options.include_usage`, `max_tokens` and `structured_outputs: {"regex": ...}`.
Requests naming the LoRA run with the adapter, requests naming the base without it.
Decoding is greedy. For real serving use vLLM (README, "Serving with vLLM").
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from policy.backends import BackendError

__all__ = ["ChatServer", "main"]


class _HTTPError(Exception):
    def __init__(self, status: int, message: str, kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status, self.message, self.kind = status, message, kind


def _decode_image(url: str):
    from PIL import Image

    if not url.startswith("data:") or ";base64," not in url:
        raise _HTTPError(400, "image_url must be a base64 data URL (data:image/png;base64,...); this server fetches nothing")
    try:
        return Image.open(io.BytesIO(base64.b64decode(url.split(";base64,", 1)[1]))).convert("RGB")
    except Exception as e:
        raise _HTTPError(400, f"image_url does not hold a readable image: {e}") from None


def _to_prompt_messages(messages: Any) -> tuple[list[dict[str, Any]], list[Any]]:
    if not isinstance(messages, list) or not messages:
        raise _HTTPError(400, "'messages' must be a non-empty list")
    out, images = [], []
    for m in messages:
        role, content = m.get("role"), m.get("content")
        if role not in ("system", "user", "assistant"):
            raise _HTTPError(400, f"unsupported message role {role!r}")
        if isinstance(content, str):
            out.append({"role": role, "content": [{"type": "text", "text": content}]})
            continue
        parts = []
        for c in content or []:
            if c.get("type") == "text":
                parts.append({"type": "text", "text": c.get("text", "")})
            elif c.get("type") == "image_url":
                url = c.get("image_url", {}).get("url", "") if isinstance(c.get("image_url"), dict) else c.get("image_url", "")
                images.append(_decode_image(url))
                parts.append({"type": "image"})
            else:
                raise _HTTPError(400, f"unsupported content part type {c.get('type')!r}")
        out.append({"role": role, "content": parts})
    return out, images


class ChatServer:
    """Serves one HFBackend on 127.0.0.1. `requests` keeps every chat request body (for tests)."""

    def __init__(self, backend: Any, base_name: str = "base", lora_name: str | None = "vlm2vla", host: str = "127.0.0.1", port: int = 0) -> None:
        self.backend, self.base_name = backend, base_name
        self.lora_name = lora_name if getattr(backend, "has_adapter", False) else None
        self.requests: list[dict[str, Any]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # one SSE event per token: do not wait for ACKs

            def log_message(self, *args: Any) -> None:
                pass

            def _json(self, status: int, obj: Any) -> None:
                body = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _error(self, e: _HTTPError) -> None:
                self._json(e.status, {"error": {"message": e.message, "type": e.kind, "code": e.status}})

            def do_GET(self) -> None:
                if self.path.rstrip("/") in ("/v1/models", "/models"):
                    self._json(200, {"object": "list", "data": server.model_cards()})
                elif self.path.rstrip("/") in ("/health", ""):
                    self._json(200, {"ok": True})
                else:
                    self._error(_HTTPError(404, f"no route {self.path}", "not_found"))

            def do_POST(self) -> None:
                if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
                    self._error(_HTTPError(404, f"no route {self.path}", "not_found"))
                    return
                try:
                    n = int(self.headers.get("Content-Length") or 0)
                    try:
                        body = json.loads(self.rfile.read(n) or b"{}")
                    except json.JSONDecodeError as e:
                        raise _HTTPError(400, f"request body is not JSON: {e}") from None
                    server.requests.append(body)
                    server.chat(self, body)
                except _HTTPError as e:
                    self._error(e)
                except BackendError as e:
                    self._error(_HTTPError(500, str(e), "server_error"))

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def model_cards(self) -> list[dict[str, Any]]:
        cards = [{"id": self.base_name, "object": "model", "owned_by": "vlm2vla", "root": self.base_name, "parent": None}]
        if self.lora_name:
            cards.append({"id": self.lora_name, "object": "model", "owned_by": "vlm2vla", "root": self.lora_name, "parent": self.base_name})
        return cards

    def chat(self, handler: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        model = body.get("model")
        if model == self.lora_name and self.lora_name:
            adapter = True
        elif model == self.base_name:
            adapter = False
        else:
            raise _HTTPError(404, f"The model `{model}` does not exist; served: {[c['id'] for c in self.model_cards()]}", "NotFoundError")
        messages, images = _to_prompt_messages(body.get("messages"))
        so = body.get("structured_outputs") or {}
        regex = so.get("regex") if isinstance(so, dict) else None
        max_tokens = int(body.get("max_completion_tokens") or body.get("max_tokens") or 256)
        stream = self.backend.generate(messages, images, "vqa", constraint_regex=regex, adapter=adapter, max_new_tokens=max_tokens)
        cid, created = "chatcmpl-" + uuid.uuid4().hex[:24], int(time.time())
        if not body.get("stream"):
            text = stream.text()
            st = stream.stats
            handler._json(200, {
                "id": cid, "object": "chat.completion", "created": created, "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 0, "completion_tokens": st.tokens, "total_tokens": st.tokens},
            })
            return
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.send_header("Cache-Control", "no-cache")
        handler.send_header("Connection", "close")
        handler.end_headers()
        handler.close_connection = True

        def send(obj: Any) -> None:
            handler.wfile.write(b"data: " + (obj if isinstance(obj, bytes) else json.dumps(obj).encode()) + b"\n\n")
            handler.wfile.flush()

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

        try:
            send(chunk({"role": "assistant", "content": ""}))
            for piece in stream:
                send(chunk({"content": piece}))
            send(chunk({}, "stop"))
            if (body.get("stream_options") or {}).get("include_usage"):
                t = stream.stats.tokens
                send({"id": cid, "object": "chat.completion.chunk", "created": created, "model": model, "choices": [],
                      "usage": {"prompt_tokens": 0, "completion_tokens": t, "total_tokens": t}})
            send(b"[DONE]")
        except (BrokenPipeError, ConnectionResetError):
            stream.close()

    def start(self) -> "ChatServer":
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="chat-server", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> "ChatServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m policy.serve", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="base model: hub id or folder (python -m training.tiny --out tiny)")
    ap.add_argument("--adapter", help="LoRA adapter folder (training.finetune --out)")
    ap.add_argument("--served-name", default=None, help="the base model's served name (default: --model)")
    ap.add_argument("--lora-name", default="vlm2vla", help="the adapter's served name")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8011)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (1 is fastest for the tiny model)")
    args = ap.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    from policy.backends.hf import HFBackend
    from policy.model import ModelLoadError

    try:
        backend = HFBackend.from_pretrained(args.model, adapter=args.adapter)
    except (ModelLoadError, BackendError) as e:
        raise SystemExit(f"error: {e}")
    server = ChatServer(backend, base_name=args.served_name or args.model, lora_name=args.lora_name, host=args.host, port=args.port)
    print(f"serving {args.model}{' + ' + args.adapter if args.adapter else ''} at {server.url}/v1", flush=True)
    try:
        server.httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.httpd.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
