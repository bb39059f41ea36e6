"""policy.model.load_model: the one loader (base, adapter, codec, dtype/device, clear errors)."""

from __future__ import annotations

import json

import pytest
import torch

from policy.language import ReservedTokensCodec
from policy.model import CODEC_FILE, LoadedModel, ModelLoadError, load_codec, load_model, save_codec


@pytest.fixture(scope="module")
def adapter_dir(tiny_model_dir, tmp_path_factory):
    """An untrained-but-nonzero LoRA adapter on the tiny model, saved in PEFT format."""
    from peft import get_peft_model

    from training.finetune import FinetuneConfig, lora_config

    lm = load_model(tiny_model_dir)
    peft_model = get_peft_model(lm.model, lora_config(FinetuneConfig(base="", data="", out="")))
    torch.manual_seed(0)
    with torch.no_grad():
        for n, p in peft_model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.05)
    out = tmp_path_factory.mktemp("adapter") / "a"
    peft_model.save_pretrained(out)
    return out


def test_cpu_defaults_and_pair_unpacking(tiny_model_dir):
    lm = load_model(tiny_model_dir)
    assert isinstance(lm, LoadedModel)
    model, processor = lm
    assert lm.device == "cpu" and lm.dtype == torch.float32 and next(model.parameters()).dtype == torch.float32
    assert not model.training and type(processor).__name__ == "Gemma3Processor"
    assert lm.codec.name == "verbalized" and lm.adapter is None


def test_dtype_by_name(tiny_model_dir):
    lm = load_model(tiny_model_dir, dtype="bfloat16")
    assert next(lm.model.parameters()).dtype == torch.bfloat16
    with pytest.raises(ModelLoadError, match="unknown dtype"):
        load_model(tiny_model_dir, dtype="int3")


def test_adapter_loads_and_can_be_switched_off(tiny_model_dir, adapter_dir):
    lm = load_model(tiny_model_dir, adapter=adapter_dir)
    ids = torch.tensor([[2, 100, 200, 300]])
    with torch.no_grad():
        with_adapter = lm.model(input_ids=ids).logits
        with lm.model.disable_adapter():
            without = lm.model(input_ids=ids).logits
    base = load_model(tiny_model_dir).model
    with torch.no_grad():
        plain = base(input_ids=ids).logits
    assert torch.allclose(without, plain, atol=1e-6)
    assert (with_adapter - plain).abs().max() > 1e-4


def test_missing_adapter_is_one_clear_error(tiny_model_dir, tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(tiny_model_dir, adapter=tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="not a LoRA adapter"):
        load_model(tiny_model_dir, adapter=tmp_path / "empty")


def test_missing_base_is_one_clear_error(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(tmp_path / "nowhere")
    (tmp_path / "notamodel").mkdir()
    with pytest.raises(ModelLoadError, match="no config.json"):
        load_model(tmp_path / "notamodel")
    with pytest.raises(ModelLoadError, match="cannot load base model"):
        load_model("nobody-has/this-model-xyz")  # offline: no download, a clear message


def test_mismatched_adapter_is_one_clear_error(tiny_model_dir, tmp_path):
    """An adapter trained on a differently sized model does not silently half-load."""
    from peft import get_peft_model
    from transformers import AutoConfig, Gemma3ForConditionalGeneration

    from training.finetune import FinetuneConfig, lora_config

    cfg = AutoConfig.from_pretrained(tiny_model_dir)
    cfg.text_config.hidden_size = 32
    cfg.text_config.intermediate_size = 48
    other = get_peft_model(Gemma3ForConditionalGeneration(cfg), lora_config(FinetuneConfig(base="", data="", out="")))
    other.save_pretrained(tmp_path / "other")
    with pytest.raises(ModelLoadError, match="does not fit base"):
        load_model(tiny_model_dir, adapter=tmp_path / "other")


def test_codec_file_round_trip_and_errors(tmp_path, tiny_model_dir, adapter_dir):
    assert load_codec(None).name == "verbalized" and load_codec(tmp_path).name == "verbalized"
    digits = [f"q{c}" for c in "abcdefghij"]
    save_codec(ReservedTokensCodec(digits), tmp_path, method="test")
    codec = load_codec(tmp_path)
    assert codec.name == "reserved_tokens" and codec.digit_tokens == digits
    assert json.loads((tmp_path / CODEC_FILE).read_text())["method"] == "test"
    (tmp_path / CODEC_FILE).write_text("{not json")
    with pytest.raises(ModelLoadError, match="not a valid action codec file"):
        load_codec(tmp_path)
    # an adapter whose codec spells digits with tokens the base does not have as single tokens
    import shutil

    bad = tmp_path / "bad_adapter"
    shutil.copytree(adapter_dir, bad)
    save_codec(ReservedTokensCodec([f"zzqx{c}yy" for c in "abcdefghij"]), bad)
    with pytest.raises(ModelLoadError, match="not one token"):
        load_model(tiny_model_dir, adapter=bad)
