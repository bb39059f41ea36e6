"""LoRA fine-tuning on the tiny Gemma 3 (CPU): loss falls, only LoRA trains, masks, reload, merge, resume, AT codec."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from policy.language import ReservedTokensCodec, parse_actions, verbalize_actions
from policy.model import load_model
from policy.prompts import action_prompt, user_message
from tests.dlan_helpers import make_dlan
from training.dlan import read_records
from training.finetune import (
    FinetuneConfig,
    build_samples,
    finetune,
    main,
    prepare,
    select_reserved_tokens,
    split_by_episode,
)


pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


@pytest.fixture(scope="module")
def dlan(tmp_path_factory):
    return make_dlan(tmp_path_factory.mktemp("dlan") / "d", episodes=6, steps=3)


def _cfg(tiny, dlan, out, **kw) -> FinetuneConfig:
    base = dict(base=str(tiny), data=str(dlan), out=str(out), max_steps=30, learning_rate=2e-3, save_steps=1000)
    base.update(kw)
    return FinetuneConfig(**base)


@pytest.fixture(scope="module")
def trained(tiny_model_dir, dlan, tmp_path_factory):
    """One 30-step run shared by the tests below; returns (prepared run, summary)."""
    out = tmp_path_factory.mktemp("run") / "run"
    run = prepare(_cfg(tiny_model_dir, dlan, out))
    run.requires_grad_before = {n for n, p in run.trainer.model.named_parameters() if p.requires_grad}
    summary = finetune(run)
    return run, summary


def _image():
    return Image.fromarray(np.full((32, 32, 3), 110, np.uint8))


def _inputs(processor):
    prompt = action_prompt("put the cup on the plate", ["reach for the cup", "grasp the cup"], 0)
    text = processor.apply_chat_template([user_message(prompt)], tokenize=False, add_generation_prompt=True)
    return processor(text=[text], images=[[_image()]], return_tensors="pt", add_special_tokens=False)


def _logits_and_greedy(model, processor, n=12):
    enc = _inputs(processor)
    model.eval()
    with torch.no_grad():
        logits = model(**enc).logits[0, -1].clone()
        out = model.generate(**enc, max_new_tokens=n, do_sample=False)
    return logits, out[0, enc["input_ids"].shape[1]:].tolist()


# --------------------------------------------------------------------------- data


def test_split_is_by_whole_episode_and_deterministic(dlan):
    recs = read_records(dlan)
    tr, ev = split_by_episode(recs, 0.2)
    assert ev and tr
    assert not {r["episode"] for r in tr} & {r["episode"] for r in ev}
    assert split_by_episode(recs, 0.2) == (tr, ev)


def test_samples_come_from_the_pipelines_definition(dlan):
    from training.dlan import chat_samples

    recs = read_records(dlan)
    mine = build_samples(recs, dlan)
    theirs = list(chat_samples(dlan))
    assert [s["messages"] for s in mine] == [s["messages"] for s in theirs]


def test_subtasks_repeat_adds_copies_of_the_subtask_samples_only(dlan):
    recs = read_records(dlan)
    once = build_samples(recs, dlan, stages=("subtasks", "actions"))
    thrice = build_samples(recs, dlan, stages=("subtasks", "actions"), subtasks_repeat=3)
    lists = build_samples(recs, dlan, stages=("subtasks",))
    assert len(lists) == len({r["episode"] for r in recs})  # one subtask list per episode
    assert thrice == once + lists + lists  # the natural mix first, then the extra copies
    assert build_samples(recs, dlan, stages=("actions",), subtasks_repeat=3) == build_samples(recs, dlan, stages=("actions",))


# --------------------------------------------------------------------------- training


def test_loss_falls(trained):
    _, s = trained
    losses = [h["loss"] for h in s["losses"]]
    assert s["global_step"] == 30 and len(losses) >= 25
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.2, losses
    assert s["eval_loss"] is not None and s["eval_loss"] < losses[0]


def test_only_lora_parameters_require_grad(trained):
    run, _ = trained
    names = run.requires_grad_before
    assert names and all("lora_A" in n or "lora_B" in n for n in names), sorted(names)[:5]
    assert all("language_model" in n for n in names)  # default targets: not the vision tower
    kinds = {n.split(".lora_")[0].rsplit(".", 1)[-1] for n in names}
    assert kinds == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}


def test_all_linear_also_adapts_the_vision_tower(tiny_model_dir):
    from peft import get_peft_model

    from training.finetune import lora_config

    lm = load_model(tiny_model_dir)
    cfg = FinetuneConfig(base="x", data="x", out="x", lora_targets="all-linear")
    names = [n for n, p in get_peft_model(lm.model, lora_config(cfg)).named_parameters() if p.requires_grad]
    assert any("vision_tower" in n for n in names) and any("language_model" in n for n in names)
    assert not any("lm_head" in n for n in names)


def test_base_weights_are_bit_identical_after_training(trained, tiny_model_dir):
    run, _ = trained
    original = dict(load_model(tiny_model_dir).model.named_parameters())  # a fresh copy of the base
    state = {
        n.removeprefix("base_model.model.").replace(".base_layer", ""): p.detach()
        for n, p in run.trainer.model.named_parameters()
        if "lora_" not in n
    }
    checked = 0
    for name, tensor in original.items():
        if name in state:
            assert torch.equal(state[name], tensor), name
            checked += 1
    assert checked == len(original)


def test_adapter_reloads_to_identical_greedy_output_and_differs_from_base(trained, tiny_model_dir):
    run, s = trained
    out = run.cfg.out
    for f in ("adapter_config.json", "adapter_model.safetensors", "action_codec.json", "README.md", "training_config.json"):
        assert (run.cfg.out and __import__("pathlib").Path(out, f).exists()), f
    mem_logits, mem_tokens = _logits_and_greedy(run.trainer.model, run.trainer.processing_class)
    lm = load_model(tiny_model_dir, adapter=out)
    re_logits, re_tokens = _logits_and_greedy(lm.model, lm.processor)
    assert re_tokens == mem_tokens
    assert torch.allclose(re_logits, mem_logits, atol=1e-5)
    with lm.model.disable_adapter():
        base_logits, _ = _logits_and_greedy(lm.model, lm.processor)
    assert (base_logits - re_logits).abs().max() > 1e-3  # the adapter really changes the model
    merged = load_model(tiny_model_dir, adapter=out, merge=True)
    assert not hasattr(merged.model, "peft_config")
    m_logits, m_tokens = _logits_and_greedy(merged.model, merged.processor)
    assert torch.allclose(m_logits, re_logits, atol=1e-4) and m_tokens == re_tokens


def test_card_records_data_hyperparameters_losses_time(trained):
    run, s = trained
    card = (run.cfg.out and open(f"{run.cfg.out}/README.md").read())
    for needle in ("r=16", "alpha=32", "dropout=0.05", "effective batch 8", "max length 1024", "eval loss", "wall time", "| 30 |"):
        assert needle in card, needle
    cfg = json.loads(open(f"{run.cfg.out}/training_config.json").read())
    assert cfg["episodes"]["eval"] >= 1 and cfg["samples"]["train"] > 0


def test_only_assistant_tokens_carry_labels(trained):
    """Token by token on a rendered example: labels == input_ids exactly on the model turn (and its <end_of_turn>)."""
    run, _ = trained
    trainer = run.trainer
    tok = trainer.processing_class.tokenizer
    ex = dict(trainer.train_dataset[0])
    batch = trainer.data_collator([ex])
    ids, labels = batch["input_ids"][0].tolist(), batch["labels"][0].tolist()
    sot = tok.convert_tokens_to_ids("<start_of_turn>")
    starts = [i for i, t in enumerate(ids) if t == sot]
    assert len(starts) == 2
    model_header_end = starts[1] + 1 + len(tok("model\n", add_special_tokens=False)["input_ids"])
    assert tok.decode(ids[starts[1]:model_header_end]) == "<start_of_turn>model\n"
    answer = ex["messages"][1]["content"][-1]["text"]
    for i, (t, lab) in enumerate(zip(ids, labels)):
        if i < model_header_end:
            assert lab == -100, (i, tok.convert_ids_to_tokens(t))
        else:
            assert lab == t, (i, tok.convert_ids_to_tokens(t))
    assert tok.decode([t for t, lab in zip(ids, labels) if lab != -100]) == answer + "<end_of_turn>\n"


# --------------------------------------------------------------------------- resume


def test_resume_continues_from_the_step_it_stopped(tiny_model_dir, dlan, tmp_path):
    kw = dict(lr_scheduler="constant", eval_fraction=0.0, lora_dropout=0.0)
    straight = finetune(_cfg(tiny_model_dir, dlan, tmp_path / "straight", max_steps=4, **kw))
    first = finetune(_cfg(tiny_model_dir, dlan, tmp_path / "split", max_steps=2, **kw))
    assert first["global_step"] == 2 and (tmp_path / "split" / "checkpoints" / "checkpoint-2").is_dir()
    second = finetune(_cfg(tiny_model_dir, dlan, tmp_path / "split", max_steps=4, resume=True, **kw))
    assert second["global_step"] == 4
    steps = [h["step"] for h in second["losses"]]
    assert steps == sorted(set(steps)) and steps[-1] == 4 and 3 in steps
    a = load_file(str(tmp_path / "straight" / "adapter_model.safetensors"))
    b = load_file(str(tmp_path / "split" / "adapter_model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k
    assert straight["losses"][-1]["loss"] == pytest.approx(second["losses"][-1]["loss"], abs=1e-4)


def test_cli_errors_are_one_line(tiny_model_dir, dlan, tmp_path, capsys):
    assert main(["--base", str(tiny_model_dir), "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: D_lan folder") and "\n" not in err
    assert main(["--base", str(tiny_model_dir), "--data", str(dlan), "--out", str(tmp_path / "o"), "--resume"]) == 2
    assert "no checkpoint" in capsys.readouterr().err
    assert main(["--base", str(tmp_path / "nobase"), "--data", str(dlan), "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err


# --------------------------------------------------------------------------- VLM2VLA-AT


def test_reserved_tokens_are_rare_single_tokens_and_round_trip(tiny_model_dir, dlan):
    lm = load_model(tiny_model_dir)
    tok = lm.processor.tokenizer
    texts = [lm.processor.apply_chat_template(s["messages"], tokenize=False) for s in build_samples(read_records(dlan)[:6], dlan)]
    digits, info = select_reserved_tokens(lm.model, lm.processor, texts)
    assert len(set(digits)) == 10
    special = set(tok.all_special_tokens)
    for t, i in zip(digits, info["token_ids"]):
        assert tok(t, add_special_tokens=False)["input_ids"] == [i] and t not in special
    assert info["mean_logprob"] == sorted(info["mean_logprob"])
    assert not any(t in text for t in digits for text in texts)  # unused in the reference text
    grammar = "move forward backward left right up down cm open close gripper"
    assert not any(t.lower() in grammar for t in digits)
    codec = ReservedTokensCodec(digits)
    rng = np.random.default_rng(1)
    for _ in range(20):
        canonical = verbalize_actions(rng.normal(0, 0.02, (5, 3)), (rng.random(5) > 0.5).astype(float))
        encoded = codec.encode(canonical)
        assert not any(c.isdigit() for c in encoded)
        assert codec.decode(encoded) == parse_actions(canonical)
        assert __import__("re").fullmatch(codec.regex, encoded)


def test_reserved_tokens_run_saves_and_reloads_the_codec(tiny_model_dir, dlan, tmp_path):
    s = finetune(_cfg(tiny_model_dir, dlan, tmp_path / "at", action_codec="reserved_tokens", max_steps=2))
    spec = json.loads((tmp_path / "at" / "action_codec.json").read_text())
    assert spec["name"] == "reserved_tokens" and spec["digit_tokens"] == s["digit_tokens"] and "method" in spec
    lm = load_model(tiny_model_dir, adapter=tmp_path / "at")
    assert lm.codec.name == "reserved_tokens" and lm.codec.digit_tokens == spec["digit_tokens"]
    canonical = "[[move forward 2.1 cm, move down 14.0 cm], [close gripper]]"
    assert lm.codec.decode(lm.codec.encode(canonical)) == parse_actions(canonical)


# --------------------------------------------------------------------------- end to end from the simulator


def test_loss_falls_on_a_dlan_made_from_sim_episodes(tiny_model_dir, tmp_path):
    """collect (sim expert) -> verbalize (D_lan) -> finetune 30 steps -> the adapter loads with the one loader."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    for cmd in (
        ["-m", "training.collect", "--task", "pick_up", "--episodes", "2", "--out", str(tmp_path / "sim"), "--image-size", "64", "--quiet"],
        ["-m", "training.verbalize", "--input", str(tmp_path / "sim"), "--format", "bridge_raw", "--out", str(tmp_path / "dlan")],
    ):
        p = subprocess.run([sys.executable, *cmd], capture_output=True, text=True, env=env, timeout=240)
        assert p.returncode == 0, p.stderr[-2000:]
    s = finetune(_cfg(tiny_model_dir, tmp_path / "dlan", tmp_path / "run", eval_fraction=0.0))
    losses = [h["loss"] for h in s["losses"]]
    assert s["global_step"] == 30 and np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.2, losses
    lm = load_model(tiny_model_dir, adapter=tmp_path / "run")
    assert lm.codec.name == "verbalized" and hasattr(lm.model, "disable_adapter")


def test_full_finetune_writes_a_model_card_not_an_adapter_card(tiny_model_dir, dlan, tmp_path):
    out = tmp_path / "full"
    finetune(_cfg(tiny_model_dir, dlan, out, max_steps=1, full_finetune=True))
    card = (out / "README.md").read_text()
    assert "# VLM2VLA fully finetuned model" in card and "library_name: transformers" in card
    assert "LoRA r=" not in card
