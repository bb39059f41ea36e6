"""The micro recipe at toy scale (world -> base -> episodes -> D_lan -> LoRA) learns.

Each assertion fails when a stage learned nothing: the pretrained base must answer its
world questions where the untrained network answers none, and the LoRA's action blocks
must come closer to the expert's than the base model's under the same grammar.
"""

from __future__ import annotations

import json

import pytest
from PIL import Image

from training.micro.__main__ import main
from training.micro.world import read_jsonl

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    out = tmp_path_factory.mktemp("micro")
    assert main(["all", "--out", str(out), "--scale", "toy", "--threads", "1", "--quiet"]) == 0
    return out


def test_the_recipe_writes_every_stage_and_resumes_without_redoing_them(toy, capsys):
    for stage in ("world", "base", "episodes", "dlan", "lora"):
        assert (toy / stage / ".done").exists(), stage
    summary = json.loads((toy / "base" / "pretrain.json").read_text())
    assert summary["final_loss"] < 0.5 * summary["first_loss"]  # the world was learned, not just seen
    before = (toy / "lora" / "adapter_model.safetensors").stat().st_mtime_ns
    assert main(["all", "--out", str(toy), "--scale", "toy", "--quiet"]) == 0  # everything done: nothing reruns
    assert (toy / "lora" / "adapter_model.safetensors").stat().st_mtime_ns == before
    assert "done in" in capsys.readouterr().out


def test_pretraining_taught_the_world_questions(toy):
    from evaluation.vqa import accuracy
    from policy.backends.hf import HFBackend
    from policy.vqa import VQA

    convs = [c for c in read_jsonl(toy / "world" / "train.jsonl") if c["image"]][:40]
    items = [{"image": Image.open(toy / "world" / c["image"]).convert("RGB"),
              "question": c["turns"][0]["question"], "answer": c["turns"][0]["answer"]} for c in convs]
    scores = {}
    for name in ("base-init", "base"):
        vqa = VQA(HFBackend.from_pretrained(str(toy / name)), max_new_tokens=16)
        scores[name] = accuracy(lambda im, q: vqa.ask(im, q).text(), items)
    assert scores["base"] >= scores["base-init"] + 10, scores


def test_the_lora_writes_blocks_closer_to_the_experts_than_its_base(toy):
    from policy.backends.hf import HFBackend
    from training.dlan import iter_records
    from training.micro.probe import probe_actions

    records = [r for r in iter_records(toy / "dlan")][:10]
    backend = HFBackend.from_pretrained(str(toy / "base"), adapter=str(toy / "lora"))
    tuned = probe_actions(backend, records, toy / "dlan", adapter=True)
    base = probe_actions(backend, records, toy / "dlan", adapter=False)
    assert tuned.parse_rate == 1.0, tuned.texts  # the grammar holds every answer to a block
    assert tuned.mean_error_cm < base.mean_error_cm, (tuned.mean_error_cm, base.mean_error_cm)
