"""The real-model path on real Gemma 3 weights: the 270M stand-in of `training.gemma270m`.

The session fixture prepares it once into the project-local cache (~1-4 min on 2 cores, then
kept between runs); the model is loaded once for the module. Checks: Gemma's tokenizer and
the Gemma 3 processor layout, the composed VLM's text logits against the causal LM's (computed
from the GGUF at preparation), xgrammar's mask for the action grammar against the grammar
itself with Gemma's 262k vocabulary (fuzzed), one constrained generation in-process and one
through the `openai` backend against `policy.serve`; the log-prob study scores exactly the
action block's tokens; the AT codec's tokens chosen from Gemma's vocabulary spell every digit
as one token; a LoRA step on it saves, reloads, changes the logits and names only modules vLLM
loads for Gemma 3.
"""

from __future__ import annotations

import json
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


def test_the_openai_backend_against_policy_serve_decodes_constrained(gemma):
    """The wire path over real weights: the regex travels as `structured_outputs`, the server masks
    Gemma's 262k vocabulary with it, the streamed answer parses."""
    from policy.backends.openai import OpenAIBackend
    from policy.serve import ChatServer

    regex = action_stage_regex(BLOCK_REGEX)
    msgs = [user_message(action_prompt("pick up the carrot", ["reach for the carrot", "grasp the carrot"], 0))]
    image = np.random.default_rng(1).integers(0, 256, (224, 224, 3), dtype=np.uint8)
    with ChatServer(gemma, base_name="gemma-3-270m", lora_name=None) as server:
        backend = OpenAIBackend(server.url, model="gemma-3-270m")
        stream = backend.generate(msgs, [image], "actions", constraint_regex=regex, max_new_tokens=160)
        text = stream.text()
        backend.close()
        body = server.requests[-1]
    assert body["structured_outputs"] == {"regex": regex} and body["model"] == "gemma-3-270m"
    assert body["messages"][0]["content"][0]["image_url"]["url"].startswith("data:image/png;base64,")
    assert re.fullmatch(regex, text), text
    parse_actions(parse_plan_actions(text).actions)
    assert stream.stats.tokens > 5


@pytest.fixture(scope="module")
def small_dlan(tmp_path_factory):
    from tests.dlan_helpers import make_dlan

    return make_dlan(tmp_path_factory.mktemp("dlan") / "d", episodes=2, steps=2)


def test_logprob_scores_exactly_the_action_blocks_tokens(gemma, small_dlan):
    """Fig. 3's span on Gemma's tokenizer (256 image tokens expanded): the scored tokens spell the
    block, the first one carrying only the space of 'Actions: ' (Gemma writes ' [[' as one token);
    scoring only the kept positions gives the full forward pass's values."""
    import torch
    from PIL import Image

    from policy.language import ReservedTokensCodec, get_codec
    from training.dlan import read_records
    from training.finetune import build_samples
    from training.logprob import action_logprob, action_span

    record = read_records(small_dlan)[0]
    image = Image.open(small_dlan / record["image"]).convert("RGB")
    tok = gemma.tokenizer
    for codec in (get_codec("verbalized"), ReservedTokensCodec([f"<unused{i}>" for i in range(10)])):
        (sample,) = build_samples([record], small_dlan, codec, ("actions",))
        text = codec.encode(record["actions"])
        enc, span = action_span(gemma.processor, sample, text, image)
        ids = enc["input_ids"][0]
        assert (ids == 262_144).sum() == 256
        assert tok.decode(ids[span]) == " " + text
        assert span == list(range(span[0], span[-1] + 1))
    mean_lp, n = action_logprob(gemma.model, gemma.processor, sample, text, image)
    with torch.no_grad():
        full = torch.log_softmax(gemma.model(**enc).logits[0].float(), dim=-1)
    expect = full[[i - 1 for i in span], ids[span]].mean().item()
    assert n == len(span) and abs(mean_lp - expect) < 1e-4


def test_at_codec_tokens_chosen_from_gemmas_vocabulary_spell_one_token_per_digit(gemma, small_dlan):
    from policy.language import ReservedTokensCodec, verbalize_actions
    from training.dlan import read_records
    from training.finetune import build_samples, select_reserved_tokens

    samples = build_samples(read_records(small_dlan)[:3], small_dlan, None, ("actions",))
    texts = [gemma.processor.apply_chat_template(s["messages"], tokenize=False) for s in samples]
    digits, info = select_reserved_tokens(gemma.model, gemma.processor, texts)
    tok = gemma.tokenizer
    assert len(set(digits)) == 10 and info["mean_logprob"] == sorted(info["mean_logprob"])
    for t, i in zip(digits, info["token_ids"]):
        assert tok(t, add_special_tokens=False)["input_ids"] == [i] and i not in tok.all_special_ids and i < 262_144
    assert not any(t in text for t in digits for text in texts)
    codec = ReservedTokensCodec(digits)
    rng = np.random.default_rng(2)
    for _ in range(10):
        canonical = verbalize_actions(rng.normal(0, 0.03, (6, 3)), (rng.random(6) > 0.5).astype(float))
        encoded = codec.encode(canonical)
        pieces = [tok.decode([i]) for i in tok(encoded, add_special_tokens=False)["input_ids"]]
        assert sum(p in digits for p in pieces) == sum(c.isdigit() for c in canonical), pieces
        assert codec.decode(encoded) == parse_actions(canonical)


def _fake_adapter(folder, keys, target_modules):
    import torch
    from safetensors.torch import save_file

    folder.mkdir()
    save_file({k: torch.zeros(2, 2) for k in keys}, str(folder / "adapter_model.safetensors"))
    (folder / "adapter_config.json").write_text(json.dumps({"r": 16, "target_modules": target_modules, "modules_to_save": None}))
    return folder


def test_vllm_module_mapping_refuses_what_vllm_refuses(tmp_path):
    from training.finetune import LANGUAGE_MODEL_TARGETS
    from training.gemma270m import vllm_lora_modules

    lm = "base_model.model.model.language_model.layers.0."
    ok = _fake_adapter(tmp_path / "ok", [lm + "self_attn.q_proj.lora_A.weight", lm + "mlp.down_proj.lora_B.weight"], LANGUAGE_MODEL_TARGETS)
    got = vllm_lora_modules(ok)
    assert got["loadable"] and got["modules"] == ["language_model.model.layers.0.mlp.down_proj", "language_model.model.layers.0.self_attn.q_proj"]
    tower = _fake_adapter(tmp_path / "tower", [lm + "self_attn.q_proj.lora_A.weight",
                                                "base_model.model.model.vision_tower.vision_model.encoder.layers.0.self_attn.q_proj.lora_A.weight"],
                          "all-linear")
    got = vllm_lora_modules(tower)
    assert not got["loadable"] and got["refused"] == ["vision_tower.vision_model.encoder.layers.0.self_attn.q_proj"]
    head = _fake_adapter(tmp_path / "head", [lm + "self_attn.q_proj.lora_A.weight"], ["q_proj", "lm_head"])
    assert not vllm_lora_modules(head)["loadable"]


def test_a_lora_step_on_the_270m_reloads_changes_logits_and_names_vllms_modules(gemma270m_dir, small_dlan, tmp_path):
    from training.finetune import FinetuneConfig, finetune
    from training.gemma270m import check_adapter

    out = tmp_path / "run"
    s = finetune(FinetuneConfig(base=str(gemma270m_dir), data=str(small_dlan), out=str(out), stages="actions", batch_size=1,
                                max_steps=1, learning_rate=1e-3, lr_scheduler="constant", eval_fraction=0.0, save_steps=1000))
    assert s["global_step"] == 1 and np.isfinite(s["train_loss"])
    got = check_adapter(out, gemma270m_dir)
    assert got["max_abs_logit_diff_on_off"] > 1e-3
    v = got["vllm"]
    assert v["loadable"] and not v["refused"] and len(v["modules"]) == 18 * 7 and v["rank"] == 16
