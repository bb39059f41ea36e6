"""Validators: gemini against a local server speaking Gemini's REST format, self on the tiny
model, sim ground truth, manual from another thread, none."""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from PIL import Image

from policy.prompts import Verdict
from policy.validators import (
    GeminiValidator,
    ManualValidator,
    SelfValidator,
    ValidatorError,
    make_validator,
)
from tests.policy_helpers import random_image


def run(gen):
    pieces = []
    while True:
        try:
            pieces.append(next(gen))
        except StopIteration as e:
            return e.value, pieces


class GeminiREST:
    """A local stand-in for generativelanguage.googleapis.com: POST /v1beta/models/{m}:generateContent.

    It answers from the image it is sent (a red image counts as 'done'), so the test sees the
    whole path: the image bytes, the prompt, the schema request and the structured answer.
    """

    def __init__(self, status: int = 200):
        self.requests: list[tuple[str, dict, dict]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append((self.path, dict(self.headers), body))
                if status != 200:
                    out = json.dumps({"error": {"code": status, "message": "API key not valid", "status": "INVALID_ARGUMENT"}}).encode()
                    self.send_response(status)
                else:
                    parts = body["contents"][0]["parts"]
                    blob = next(p["inlineData"] for p in parts if "inlineData" in p)
                    img = np.asarray(Image.open(io.BytesIO(base64.urlsafe_b64decode(blob["data"]))))
                    red = img[..., 0].mean() > 200 and img[..., 1].mean() < 50
                    text = next(p["text"] for p in parts if "text" in p)
                    answer = {"done": bool(red), "reason": ("the image is red" if red else "the image is not red") + f" ({len(text)} chars asked)"}
                    out = json.dumps({
                        "candidates": [{"content": {"role": "model", "parts": [{"text": json.dumps(answer)}]}, "finishReason": "STOP", "index": 0}],
                        "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 8, "totalTokenCount": 18},
                        "modelVersion": "gemini-2.5-pro",
                    }).encode()
                    self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_gemini_validator_over_the_rest_wire_format():
    server = GeminiREST()
    try:
        v = GeminiValidator(api_key="test-key", base_url=server.url, attempts=1)
        red = np.zeros((32, 32, 3), np.uint8)
        red[..., 0] = 255
        verdict, pieces = run(v.judge(red, "grasp the carrot", 1, instruction="put the carrot on the plate"))
        assert verdict == Verdict(True, verdict.reason) and verdict.reason.startswith("the image is red")
        assert pieces and pieces[0].startswith("yes:")
        verdict, _ = run(v.judge(np.zeros((32, 32, 3), np.uint8), "grasp the carrot", 1))
        assert not verdict.done and "not red" in verdict.reason
        path, headers, body = server.requests[0]
        assert path.startswith("/v1beta/models/gemini-2.5-pro:generateContent")
        assert headers.get("x-goog-api-key") == "test-key"
        gc = body["generationConfig"]
        assert gc["responseMimeType"] == "application/json"
        schema = gc.get("responseSchema") or gc.get("responseJsonSchema")
        assert {"done", "reason"} <= set(json.dumps(schema).replace('"', " ").split())
        text = next(p["text"] for p in body["contents"][0]["parts"] if "text" in p)
        assert "grasp the carrot" in text and "put the carrot on the plate" in text
    finally:
        server.close()


def test_gemini_errors_name_the_service(monkeypatch):
    server = GeminiREST(status=400)
    try:
        v = GeminiValidator(api_key="bad", base_url=server.url, attempts=1)
        with pytest.raises(ValidatorError, match="gemini validator"):
            run(v.judge(random_image(), "grasp", 0))
    finally:
        server.close()
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    with pytest.raises(ValidatorError, match="GEMINI_API_KEY"):
        GeminiValidator()


def test_self_validator_on_the_tiny_model_always_answers_yes_or_no(tiny_backend):
    v = SelfValidator(tiny_backend)
    for seed in range(2):
        verdict, pieces = run(v.judge(random_image(seed), "grasp the carrot", 0))
        text = "".join(pieces)
        assert text.startswith(("yes: ", "no: ")), text
        assert verdict.done == text.startswith("yes")


def test_sim_none_and_manual():
    calls = []
    v = make_validator("sim", check=lambda i: calls.append(i) or i == 1)
    assert run(v.judge(None, "a", 0))[0].done is False and run(v.judge(None, "b", 1))[0].done is True and calls == [0, 1]
    assert run(make_validator("none").judge(None, "a", 0))[0].done

    m = make_validator("manual")
    assert isinstance(m, ManualValidator) and m.needs_user
    threading.Timer(0.1, lambda: m.give(False, "the carrot slipped")).start()
    t = time.perf_counter()
    verdict, _ = run(m.judge(None, "grasp", 0))
    assert verdict == Verdict(False, "the carrot slipped") and time.perf_counter() - t >= 0.09
    stop = threading.Event()
    threading.Timer(0.1, stop.set).start()
    assert run(m.judge(None, "grasp", 0, should_stop=stop.is_set))[0] is None  # stopped while waiting
    with pytest.raises(ValidatorError, match="choose"):
        make_validator("oracle")
