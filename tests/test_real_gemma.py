"""The real-model path on real Gemma 3 weights: the 270M stand-in of `training.gemma270m`.

The session fixture prepares it once into the project-local cache (~1-4 min on 2 cores, then
kept between runs); the model is loaded once for the module. Checks: Gemma's tokenizer and
the Gemma 3 processor layout, the composed VLM's text logits against the causal LM's (computed
from the GGUF at preparation), xgrammar's mask for the action grammar against the grammar
itself with Gemma's 262k vocabulary (fuzzed), and one constrained generation.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policy.backends import bounded_block_regex
from policy.language import ACTION_REGEX, parse_actions
from policy.prompts import action_prompt, action_stage_regex, parse_plan_actions, user_message
from tests.test_language import regex_strings

pytestmark = [pytest.mark.real_gemma, pytest.mark.slow]

BLOCK = "[[move forward 2.1 cm, move down 4.0 cm], [close gripper]]"
BLOCK_REGEX = bounded_block_regex(ACTION_REGEX)


@pytest.fixture(scope="module")
def gemma(gemma270m_dir):
    from policy.backends.hf import HFBackend

    return HFBackend.from_pretrained(str(gemma270m_dir), max_new_tokens=160)


def test_tokenizer_and_processor_are_gemma_3s(gemma):
    tok, proc = gemma.tokenizer, gemma.processor
    assert len(tok) == 262_145 and gemma.model.config.text_config.vocab_size == 262_208
    ids = {t: tok.convert_tokens_to_ids(t) for t in ["<pad>", "<eos>", "<bos>", "<start_of_turn>", "<end_of_turn>",
                                                       "<start_of_image>", "<end_of_image>", "<image_soft_token>"]}
    assert list(ids.values()) == [0, 1, 2, 105, 106, 255_999, 256_000, 262_144]
    assert len(tok(BLOCK, add_special_tokens=False)["input_ids"]) == 21
    assert 1 in gemma.eos_token_ids and 106 in gemma.eos_token_ids
    inputs = gemma.encode([user_message("what is this?")], [np.zeros((64, 64, 3), np.uint8)])
    seq = inputs["input_ids"][0].tolist()
    a = seq.index(255_999)
    assert seq[:3] == [2, 105, tok.convert_tokens_to_ids("user")] or seq[0] == 2
    assert seq[a + 1 : a + 257] == [262_144] * 256 and seq[a + 257] == 256_000
    assert proc.apply_chat_template([user_message("hi", images=0)], tokenize=False, add_generation_prompt=True) == (
        "<bos><start_of_turn>user\nhi<end_of_turn>\n<start_of_turn>model\n"
    )


def test_composed_vlm_text_logits_equal_the_causal_lms(gemma, gemma270m_dir):
    from training.gemma270m import REFERENCE, REFERENCE_STRIDE, probe_logits

    ref = np.load(gemma270m_dir / REFERENCE)
    got = probe_logits(gemma.model, gemma.tokenizer)
    assert np.abs(got[:, ::REFERENCE_STRIDE] - ref["strided"]).max() < 1e-4
    assert np.abs(got[-1] - ref["last"]).max() < 1e-4
    # real weights, not just equal ones: the base model knows a fact
    tok = gemma.tokenizer
    ids = tok("The Eiffel Tower is in the city of", return_tensors="pt")["input_ids"]
    import torch

    with torch.no_grad():
        nxt = gemma.model(input_ids=ids).logits[0, -1].argmax().item()
    assert tok.decode([nxt]).strip() == "Paris"


def _admitted(gemma, text: str) -> bool:
    """Does xgrammar's token mask let Gemma write `text` (tokenized as the tokenizer does) and then stop?"""
    import xgrammar as xgr

    m = xgr.GrammarMatcher(gemma.compiled_grammar(BLOCK_REGEX))
    ids = gemma.tokenizer(text, add_special_tokens=False)["input_ids"]
    return all(m.accept_token(i) for i in ids) and m.accept_token(gemma.eos_token_ids[0]) and m.is_terminated()


@st.composite
def near_misses(draw):
    """A valid block with one character replaced, inserted or deleted (often, not always, invalid)."""
    text = draw(regex_strings())
    i = draw(st.integers(0, len(text) - 1))
    c = draw(st.sampled_from(list("[], .0123456789 cmovefrwadbkltighpusn-")))
    op = draw(st.integers(0, 2))
    return text[:i] + (c if op < 2 else "") + text[i + (op != 1) :]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.one_of(regex_strings(), near_misses()))
def test_grammar_mask_admits_exactly_the_action_language(gemma, text):
    assert _admitted(gemma, text) == bool(re.fullmatch(BLOCK_REGEX, text)), text


def test_what_the_mask_lets_through_parses(gemma):
    """Random walks over the allowed tokens of the 262k vocabulary always spell a valid block."""
    import xgrammar as xgr

    vocab = gemma._vocab_size()
    bitmask = xgr.allocate_token_bitmask(1, vocab)
    rng = np.random.default_rng(0)
    for _ in range(6):
        m = xgr.GrammarMatcher(gemma.compiled_grammar(BLOCK_REGEX))
        ids: list[int] = []
        while not m.is_terminated():
            m.fill_next_token_bitmask(bitmask)
            allowed = np.flatnonzero(np.unpackbits(bitmask.numpy().view(np.uint8), bitorder="little")[:vocab])
            assert len(allowed) > 0 and len(ids) < 3000
            ends = [t for t in allowed if t in gemma.eos_token_ids]
            words = [t for t in allowed if t not in gemma.eos_token_ids]
            choice = ends[0] if ends and (not words or rng.random() < 0.3) else int(rng.choice(words))
            assert m.accept_token(int(choice))
            if choice not in gemma.eos_token_ids:
                ids.append(int(choice))
        text = gemma.tokenizer.decode(ids)
        assert re.fullmatch(BLOCK_REGEX, text), text
        parse_actions(text)


def test_one_constrained_generation_parses(gemma):
    regex = action_stage_regex(BLOCK_REGEX)
    msgs = [user_message(action_prompt("put the carrot on the plate", ["grasp the carrot", "place it on the plate"], 0))]
    image = np.random.default_rng(0).integers(0, 256, (224, 224, 3), dtype=np.uint8)
    stream = gemma.generate(msgs, [image], "actions", constraint_regex=regex, max_new_tokens=160)
    text = stream.text()
    assert re.fullmatch(regex, text), text
    parse_actions(parse_plan_actions(text).actions)
    assert stream.stats.finished and stream.stats.tokens > 5
