"""Backends: the interface, the hf backend on the tiny model (constrained decoding, adapter
switch), the openai backend against a real loopback chat-completions server."""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from policy.backends import BackendError, TextStream, bounded_block_regex
from policy.backends.openai import OpenAIBackend, to_openai_messages
from policy.language import ACTION_REGEX, ReservedTokensCodec, parse_actions
from policy.prompts import action_prompt, action_stage_regex, parse_plan_actions, subtasks_prompt, user_message
from tests.policy_helpers import random_image

INSTR = "put the carrot on the plate"
SUBTASKS = ["reach for the carrot", "grasp the carrot", "lift the carrot"]


def action_messages(index=0):
    return [user_message(action_prompt(INSTR, SUBTASKS, index))]


# ---------------------------------------------------------------------------- interface


def test_bounded_block_regex_keeps_the_language_and_bounds_it():
    r = bounded_block_regex(ACTION_REGEX, max_steps=3, max_commands=2)
    ok = ["[]", "[[move up 1.0 cm]]", "[[move up 1.0 cm, close gripper], [open gripper], [move left 0.3 cm]]"]
    for s in ok:
        assert re.fullmatch(r, s) and re.fullmatch(ACTION_REGEX, s)
    assert not re.fullmatch(r, "[[open gripper], [open gripper], [open gripper], [open gripper]]")  # 4 steps
    assert not re.fullmatch(r, "[[move up 1.0 cm, move up 1.0 cm, move up 1.0 cm]]")  # 3 commands
    codec = ReservedTokensCodec([f"<unused{i}>" for i in range(10)])
    rb = bounded_block_regex(codec.regex, 4)
    assert re.fullmatch(rb, codec.encode("[[move up 1.5 cm]]"))
    with pytest.raises(ValueError):
        bounded_block_regex("[a-z]+")


def test_text_stream_collects_text_and_stats():
    s = TextStream(iter(["a", "", "bc", 7]))
    assert list(s) == ["a", "bc"]
    assert s.stats.text == "abc" and s.stats.tokens == 7 and s.stats.finished


# ---------------------------------------------------------------------------- hf


@pytest.mark.parametrize("index", [0, 1, 2])
def test_hf_constrained_action_stage_always_parses(tiny_backend, index):
    regex = action_stage_regex(bounded_block_regex(ACTION_REGEX))
    for adapter in (True, False):
        stream = tiny_backend.generate(action_messages(index), [random_image(index)], "actions", constraint_regex=regex, adapter=adapter, max_new_tokens=1024)
        text = stream.text()
        assert re.fullmatch(regex, text), text
        parse_actions(parse_plan_actions(text).actions)  # never raises
        st = stream.stats
        assert st.tokens > 0 and st.prefill_s > 0 and st.decode_s >= 0 and st.finished


def test_hf_unconstrained_text_is_not_the_grammar(tiny_backend):
    text = tiny_backend.generate(action_messages(), [random_image()], "actions", max_new_tokens=24).text()
    assert text and not re.fullmatch(action_stage_regex(), text)  # random weights: gibberish


def test_hf_adapter_switch_changes_the_output_and_back(tiny_backend):
    msgs, img = [user_message(subtasks_prompt(INSTR))], [random_image(3)]
    on1 = tiny_backend.generate(msgs, img, "subtasks", adapter=True, max_new_tokens=16).text()
    off = tiny_backend.generate(msgs, img, "subtasks", adapter=False, max_new_tokens=16).text()
    on2 = tiny_backend.generate(msgs, img, "subtasks", adapter=True, max_new_tokens=16).text()
    assert tiny_backend.has_adapter
    assert on1 != off and on1 == on2  # greedy; disable_adapter is undone after the call


def test_hf_stream_closed_early_frees_the_model(tiny_backend):
    s = tiny_backend.generate(action_messages(), [random_image()], "actions", max_new_tokens=200)
    next(iter(s))
    s.close()
    assert not s.stats.finished
    # the lock was released: another generation runs
    assert tiny_backend.generate(action_messages(), [random_image()], "actions", max_new_tokens=4).text()


def test_hf_placeholder_count_must_match(tiny_backend):
    with pytest.raises(BackendError, match="placeholders"):
        tiny_backend.generate(action_messages(), [], "actions")


# ---------------------------------------------------------------------------- openai


def test_openai_messages_carry_images_as_data_urls():
    out = to_openai_messages(action_messages(), [random_image()])
    parts = out[0]["content"]
    assert parts[0]["type"] == "image_url" and parts[0]["image_url"]["url"].startswith("data:image/png;base64,")
    assert parts[1] == {"type": "text", "text": action_prompt(INSTR, SUBTASKS, 0)}
    with pytest.raises(BackendError):
        to_openai_messages(action_messages(), [])


def test_openai_streams_constrained_blocks_from_the_server(chat_server, tiny_backend):
    client = OpenAIBackend(chat_server.url, model="vlm2vla")
    regex = action_stage_regex(bounded_block_regex(ACTION_REGEX))
    stream = client.generate(action_messages(1), [random_image(1)], "actions", constraint_regex=regex, max_new_tokens=1024)
    pieces = list(stream)
    assert len(pieces) > 1  # streamed, not one blob
    assert re.fullmatch(regex, stream.stats.text)
    parse_actions(parse_plan_actions(stream.stats.text).actions)
    body = chat_server.requests[-1]
    assert body["structured_outputs"] == {"regex": regex}
    assert not any(k.startswith("guided") for k in body)
    assert body["stream"] is True and body["model"] == "vlm2vla"
    # the same text as the in-process backend (same weights, greedy)
    local = tiny_backend.generate(action_messages(1), [random_image(1)], "actions", constraint_regex=regex, max_new_tokens=1024).text()
    assert stream.stats.text == local
    assert stream.stats.tokens > 0


def test_openai_adapter_off_asks_the_base_model(chat_server):
    client = OpenAIBackend(chat_server.url, model="vlm2vla")
    msgs, img = [user_message(subtasks_prompt(INSTR))], [random_image(3)]
    on = client.generate(msgs, img, "subtasks", max_new_tokens=16).text()
    off = client.generate(msgs, img, "subtasks", adapter=False, max_new_tokens=16).text()
    assert chat_server.requests[-1]["model"] == "tiny-base"  # found through /v1/models "parent"
    assert on != off


def test_openai_errors_are_one_clear_line(chat_server):
    with pytest.raises(BackendError, match="404.*does not exist"):
        OpenAIBackend(chat_server.url, model="nope").generate(action_messages(), [random_image()], "actions").text()
    with pytest.raises(BackendError, match="cannot reach|ConnectError"):
        OpenAIBackend("http://127.0.0.1:9", model="x", retries=1, backoff_s=0.01).generate(action_messages(), [random_image()], "actions").text()
    with pytest.raises(BackendError, match="http"):
        OpenAIBackend("localhost:8000")


def test_openai_retries_a_busy_server_then_streams():
    """A real server that answers 503 once, then a proper SSE stream."""
    calls = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            calls.append(1)
            if len(calls) == 1:
                body = json.dumps({"error": {"message": "busy"}}).encode()
                self.send_response(503)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            for piece in ["yes", ": done"]:
                self.wfile.write(b"data: " + json.dumps({"choices": [{"delta": {"content": piece}}]}).encode() + b"\n\n")
            self.wfile.write(b"data: " + json.dumps({"choices": [], "usage": {"completion_tokens": 3}}).encode() + b"\n\n")
            self.wfile.write(b"data: [DONE]\n\n")

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        client = OpenAIBackend(f"http://127.0.0.1:{httpd.server_address[1]}", model="m", retries=2, backoff_s=0.01)
        s = client.generate([user_message("hi", images=0)], [], "vqa")
        assert s.text() == "yes: done" and s.stats.tokens == 3 and len(calls) == 2
    finally:
        httpd.shutdown()
        httpd.server_close()
