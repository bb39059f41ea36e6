"""The micro recipe at toy scale (world -> base -> episodes -> D_lan -> LoRA) learns.

Each assertion fails when a stage learned nothing: the pretrained base must answer its
world questions where the untrained network answers none, and the LoRA's action blocks
must come closer to the expert's than the base model's under the same grammar.
"""

from __future__ import annotations

import json
from dataclasses import replace

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


def test_the_tower_learns_to_locate_and_language_pretraining_keeps_it_frozen(toy, tmp_path):
    from safetensors.torch import load_file

    from training.micro.base import PretrainConfig, pretrain
    from training.micro.vision import VisionConfig, pretrain_vision

    seen, base = tmp_path / "base-vision", tmp_path / "base"
    vision = pretrain_vision(toy / "base-init", toy / "world", seen,
                             VisionConfig(steps=300, batch_size=16, learning_rate=3e-3, warmup_steps=10, eval_every=0), progress=False)
    # the probe fitted its targets (40 toy scenes are too few to beat guessing on held-out ones: 11.0 vs 10.5 cm)
    assert vision["final_loss"] < 0.5 * vision["first_loss"], vision
    pretrain(seen, toy / "world", base, PretrainConfig(steps=3, batch_size=4, freeze_vision=True), progress=False)
    before, after = load_file(seen / "model.safetensors"), load_file(base / "model.safetensors")
    tower = [k for k in before if "vision_tower" in k]
    assert tower and all(before[k].equal(after[k]) for k in tower)  # language pretraining left the tower alone
    assert any(not before[k].equal(after[k]) for k in before if "multi_modal_projector" in k)  # ...not the projector


def test_the_slots_probe_reads_thing_i_from_image_token_i_alone():
    import torch

    from training.micro.vision import VisionConfig, slots

    probe = slots(width=8, tokens=12, things=9, rest=5)
    feats = torch.randn(2, 12, 8)
    out = probe(feats)
    assert out.shape == (2, 2 * 9 + 5) and probe.slot_logits.shape == (2, 9, 9)
    moved = feats.clone()
    moved[:, 3] += 1.0  # token 3 changes: only thing 3's (x, y) and the gripper's readout can move
    diff = (probe(moved) - out).abs().sum(0)
    assert diff[[6, 7]].gt(0).all() and diff[: 2 * 9].ne(0).sum() == 2
    assert probe.extra_loss() > 0  # token i is not yet marked as thing i's
    with pytest.raises(ValueError, match="9 things need as many image tokens"):
        slots(width=8, tokens=4, things=9, rest=5)
    with pytest.raises(ValueError, match="VisionConfig.probe"):
        VisionConfig(probe="linear")


def test_the_binding_experiment_asks_about_training_scenes_only_and_reports_held_out_ones(toy, tmp_path):
    from training.micro.binding import BindingConfig, coordinate_questions, run
    from training.micro.world import HELDOUT_SEED_BASE, THINGS, SceneTruth, cm

    scenes = [SceneTruth(**r) for r in read_jsonl(toy / "world" / "scenes.jsonl")]
    train = [t for t in scenes if t.seed < HELDOUT_SEED_BASE]
    rows = coordinate_questions(toy / "world", THINGS)
    assert len(rows) == len(THINGS) * len(train) < len(THINGS) * len(scenes)  # held-out scenes are never asked about
    first = train[0].positions[THINGS[0]]
    assert rows[0]["turns"][0]["answer"] == f"x {cm(first[0])} cm, y {cm(first[1])} cm"
    r = run(toy / "base", toy / "world", tmp_path, BindingConfig(first_steps=2, all_steps=2, world_steps=2, probe_scenes=2),
            threads=1, progress=False)
    assert set(r["phases"]) == {"first", "all", "world"} and r["locations"]["heldout"]["asked"] == 6
    assert json.loads((tmp_path / "binding.json").read_text())["all_steps"] == 2


def test_a_bound_scale_runs_the_binding_phases_after_the_world_and_ships_their_last_weights(toy, tmp_path):
    import shutil

    from training.micro.__main__ import SCALES, card, stage_base
    from training.micro.binding import BindingConfig

    out = tmp_path / "bound"
    out.mkdir()
    for name in ("world", "base-init"):
        (out / name).symlink_to(toy / name)
    shutil.copytree(toy / "base", out / "base-lm")  # the world pretraining, done (its .done copied along)
    scale = replace(SCALES["toy"], binding=BindingConfig(first_steps=1, all_steps=2, world_steps=1, probe_scenes=1))
    stage_base(out, scale, progress=False, threads=1)
    assert (out / "base" / "model.safetensors").read_bytes() == (out / "binding" / "model-world" / "model.safetensors").read_bytes()
    assert json.loads((out / "base" / ".done").read_text())["binding"]["all"]["steps"] == 2
    for name in ("episodes", "dlan", "lora"):
        (out / name).symlink_to(toy / name)
    text = card(out)
    assert "1 steps about the first pickable, 2 about every thing, then 1 steps of the world corpus" in text
    assert f"{json.loads((toy / 'base' / 'pretrain.json').read_text())['steps']} steps of" in text  # the world line: base-lm


def test_ship_copies_base_and_adapter_without_checkpoints_and_keeps_the_report_there(toy, tmp_path):
    from training.micro.__main__ import stage_ship

    to = tmp_path / "assets" / "micro"
    (to / "report").mkdir(parents=True)
    (to / "report" / "report.md").write_text("# Evaluation report\n")
    (to / "stale.txt").write_text("from an older ship")
    stage_ship(toy, to)
    assert (to / "base" / "model.safetensors").exists() and (to / "lora" / "adapter_model.safetensors").exists()
    assert not list(to.rglob("checkpoint*")) and not list(to.rglob(".done"))
    assert (to / "report" / "report.md").read_text() == "# Evaluation report\n"  # the demo's Evaluation tab survives
    assert not (to / "stale.txt").exists() and "`report/report.md` beside this card" in (to / "README.md").read_text()
    assert not to.with_name("micro.tmp").exists()


def test_locate_conversations_ask_only_coordinates_and_leave_the_heldout_set_as_it_was(tmp_path):
    import shutil

    from training.micro.world import LOCATE_KINDS, WorldConfig, build_world

    cfg = WorldConfig(scenes=3, heldout_scenes=1, fact_passes=0.02)
    build_world(tmp_path / "plain", cfg, progress=False)
    shutil.copytree(tmp_path / "plain", tmp_path / "located")  # the same renders
    build_world(tmp_path / "located", replace(cfg, locate_conversations_per_scene=2), progress=False)
    assert (tmp_path / "plain" / "heldout.jsonl").read_text() == (tmp_path / "located" / "heldout.jsonl").read_text()
    extra = len(list(read_jsonl(tmp_path / "located" / "train.jsonl"))) - len(list(read_jsonl(tmp_path / "plain" / "train.jsonl")))
    assert extra == 2 * 3
    locate = [c for c in read_jsonl(tmp_path / "located" / "train.jsonl")
              if c["image"] and all(t["kind"] in LOCATE_KINDS for t in c["turns"])]
    assert len(locate) >= 6 and any(t["kind"] == "offset" for c in locate for t in c["turns"])


def test_split_digits_spells_every_number_one_digit_a_token():
    from training.tiny import train_tokenizer

    lines = [f"the carrot is at x {x / 10:.1f} cm, y -{x % 97 / 10:.1f} cm" for x in range(0, 2000, 7)] * 3
    digits = set("0123456789")
    merged = train_tokenizer(lines, vocab_size=600).tokenize("x 18.5 cm, y -7.4 cm")
    split = train_tokenizer(lines, vocab_size=600, split_digits=True).tokenize("x 18.5 cm, y -7.4 cm")
    assert any(len(set(t) & digits) and len(t) > 1 for t in merged)  # without it, numbers become tokens
    assert all(len(t) == 1 for t in split if set(t) & digits), split
    assert [t for t in split if set(t) & digits] == ["1", "8", "5", "7", "4"]


def test_scene_targets_are_positions_in_decimetres_then_gripper_state():
    from training.micro.vision import HOLDABLE, LOCATED, scene_targets
    from training.micro.world import example_truth

    t = example_truth()
    y = scene_targets(t)
    assert len(y) == 2 * len(LOCATED) + 3 + 1 + len(HOLDABLE)
    assert y[:2].tolist() == pytest.approx([10 * v for v in t.positions[LOCATED[0]][:2]])
    assert y[2 * len(LOCATED) : 2 * len(LOCATED) + 3].tolist() == pytest.approx([2.5, 0.0, 1.6])
    assert y[-len(HOLDABLE):].tolist() == [1.0, 0.0, 0.0, 0.0]  # holding nothing


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


def test_the_location_probe_scores_coordinate_answers_against_the_simulator(toy):
    from policy.backends.hf import HFBackend
    from training.micro.probe import probe_locations

    res = probe_locations(HFBackend.from_pretrained(str(toy / "base")), toy / "world", scenes=2)
    assert set(res) == {"train", "heldout"}
    for split in res.values():
        assert split["asked"] == 2 * 3 and 0 <= split["parsed"] <= split["asked"]
        if split["parsed"]:  # errors are centimetres against the simulator, never negative
            assert min(split["error_xy_cm"]) >= 0 and min(split["mean_guess_error_xy_cm"]) > 0
