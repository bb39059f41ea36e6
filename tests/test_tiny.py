"""The tiny Gemma 3: loads with the Auto classes, renders the project's prompts, runs with an image."""

import numpy as np
import pytest
from PIL import Image

from policy.prompts import action_prompt, chat_sample, format_plan_actions
from training.tiny import TINY_SPECIAL_TOKENS, build_tiny, main

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


@pytest.fixture(scope="module")
def loaded(tiny_model_dir):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    return AutoModelForImageTextToText.from_pretrained(tiny_model_dir), AutoProcessor.from_pretrained(tiny_model_dir)


def test_auto_classes_load_real_gemma3(loaded):
    model, processor = loaded
    assert type(model).__name__ == "Gemma3ForConditionalGeneration"
    assert type(processor).__name__ == "Gemma3Processor"
    n = sum(p.numel() for p in model.parameters())
    assert 50_000 < n < 1_000_000
    assert model.config.text_config.vocab_size == len(processor.tokenizer)


def test_special_tokens_are_single_tokens(loaded):
    _, processor = loaded
    tok = processor.tokenizer
    for t in TINY_SPECIAL_TOKENS:
        ids = tok(t, add_special_tokens=False)["input_ids"]
        assert len(ids) == 1 and tok.convert_ids_to_tokens(ids[0]) == t, t
    assert tok.bos_token == "<bos>" and tok.eos_token == "<eos>" and tok.pad_token == "<pad>"
    assert tok.boi_token == "<start_of_image>" and tok.image_token == "<image_soft_token>"


def test_byte_fallback_round_trips_any_text(loaded):
    _, processor = loaded
    text = "Actions: [[move forward 2.1 cm]] recoger la zanahoria — 日本の旗 ✓"
    ids = processor.tokenizer(text, add_special_tokens=False)["input_ids"]
    assert processor.tokenizer.decode(ids) == text
    assert processor.tokenizer.unk_token_id not in ids


def test_chat_template_is_gemma3_and_model_runs_with_an_image(loaded):
    model, processor = loaded
    img = Image.fromarray(np.full((48, 64, 3), 120, np.uint8))
    sample = chat_sample(
        action_prompt("put the carrot on the plate", ["reach for the carrot", "grasp the carrot"], 1),
        format_plan_actions("move down", "[[move down 2.0 cm], [close gripper]]"),
        img,
    )
    text = processor.apply_chat_template(sample["messages"], tokenize=False)
    assert text.startswith("<bos><start_of_turn>user\n<start_of_image>Instruction: put the carrot")
    assert "<end_of_turn>\n<start_of_turn>model\nPlan: move down\nActions: [[move down 2.0 cm]" in text
    prompt = processor.apply_chat_template(sample["messages"][:1], tokenize=False, add_generation_prompt=True)
    enc = processor(text=[prompt], images=[[img]], return_tensors="pt", add_special_tokens=False)
    n_img = int((enc["input_ids"] == model.config.image_token_index).sum())
    assert n_img == model.config.mm_tokens_per_image
    out = model.generate(**enc, max_new_tokens=5, do_sample=False)
    assert out.shape[1] == enc["input_ids"].shape[1] + 5 or int(out[0, -1]) in model.generation_config.eos_token_id


def test_build_is_deterministic(tiny_model_dir, tmp_path):
    other = build_tiny(tmp_path / "again")
    assert (other / "tokenizer.json").read_text() == (tiny_model_dir / "tokenizer.json").read_text()
    assert (other / "model.safetensors").read_bytes() == (tiny_model_dir / "model.safetensors").read_bytes()


def test_cli_writes_a_folder(tmp_path, capsys):
    assert main(["--out", str(tmp_path / "t")]) == 0
    assert (tmp_path / "t" / "config.json").exists() and (tmp_path / "t" / "tokenizer.json").exists()
    assert "tiny Gemma 3 written" in capsys.readouterr().out
