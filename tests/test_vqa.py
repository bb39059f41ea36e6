"""VQA on the policy's own model and weights: streaming, adapter on/off, both model backends."""

from __future__ import annotations

import pytest

from policy.backends import BackendError
from policy.backends.openai import OpenAIBackend
from policy.backends.scripted import ScriptedBackend
from policy.vqa import VQA, ask
from tests.policy_helpers import random_image

Q = "What is on the table?"


def test_ask_streams_and_switches_the_adapter(tiny_backend):
    img = random_image(7)
    stream = ask(img, Q, adapter=True, backend=tiny_backend, max_new_tokens=12)
    pieces = list(stream)
    assert pieces and "".join(pieces) == stream.stats.text and stream.stats.tokens > 1
    off = ask(img, Q, adapter=False, backend=tiny_backend, max_new_tokens=12).text()
    assert off != stream.stats.text  # same weights in memory, LoRA switched off
    again = VQA(tiny_backend, max_new_tokens=12).ask(img, Q).text()
    assert again == stream.stats.text  # and switched back on
    assert VQA(tiny_backend, max_new_tokens=6).ask(None, Q).text()  # text-only question


def test_ask_over_the_openai_backend_matches_in_process(chat_server, tiny_backend):
    img = random_image(8)
    client = OpenAIBackend(chat_server.url, model="vlm2vla")
    for adapter in (True, False):
        remote = ask(img, Q, adapter=adapter, backend=client, max_new_tokens=10).text()
        local = ask(img, Q, adapter=adapter, backend=tiny_backend, max_new_tokens=10).text()
        assert remote == local


def test_vqa_errors():
    class Expert:
        def subtasks(self):
            return ["a"]

        def plan_segment(self, i):
            raise AssertionError

    with pytest.raises(BackendError, match="no language model"):
        VQA(ScriptedBackend(Expert()))
    with pytest.raises(ValueError, match="empty"):
        VQA(object()).ask(None, "  ")
