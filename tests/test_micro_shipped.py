"""The shipped micro model (assets/micro): it loads, drives one sim episode, and answers questions.

No success-rate thresholds here (rates are benchmarks: README, "The micro model"); these
check the demo's default works end to end with the real weights in the repository.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from policy.events import EpisodeDone, StepExecuted, SubtasksPlanned

MICRO = Path(__file__).resolve().parents[1] / "assets" / "micro"
pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


@pytest.fixture(scope="module")
def backend():
    from policy.backends import make_backend

    return make_backend("hf", model=str(MICRO / "base"), adapter=str(MICRO / "lora"))


def test_it_loads_through_the_policy_loader_with_its_card():
    from policy.model import load_model

    lm = load_model(MICRO / "base", adapter=MICRO / "lora")
    assert lm.adapter == MICRO / "lora" and lm.codec.name == "verbalized"
    card = (MICRO / "README.md").read_text()
    assert "English instructions only" in card and "python -m training.micro" in card
    size_mb = sum(f.stat().st_size for f in MICRO.rglob("*") if f.is_file()) / 2**20
    assert size_mb < 40, f"assets/micro holds {size_mb:.0f} MB"


def test_it_drives_one_simulated_episode_end_to_end(backend, tmp_path):
    from policy.loop import ClosedLoop, LoopConfig
    from policy.sim_episode import sim_episode
    from robot.sim.robot import SimRobot
    from robot.sim.tasks import make_task

    task = make_task("pick_up", seed=3)
    sim = SimRobot(seed=3, task=task)
    ep = sim_episode(sim, task, seed=3, backend=backend)
    events = list(ClosedLoop(sim, ep.backend, ep.validator, LoopConfig(max_retries=0, log_dir=str(tmp_path))).run(
        task.instruction(), seed=3))
    sim.disconnect()
    planned = next(e for e in events if isinstance(e, SubtasksPlanned))
    assert planned.subtasks  # its own subtask list parsed
    assert any(isinstance(e, StepExecuted) for e in events)  # its own blocks reached the arm
    assert isinstance(events[-1], EpisodeDone) and "error" not in events[-1].reason.lower()


def test_it_answers_about_the_image_with_the_adapter_on_and_off(backend):
    from policy.vqa import VQA

    image = np.full((256, 256, 3), 128, np.uint8)
    vqa = VQA(backend, max_new_tokens=12)
    on = vqa.ask(image, "What colour is the carrot?", adapter=True).text()
    off = vqa.ask(image, "What colour is the carrot?", adapter=False).text()
    assert on.strip() and off.strip()
    assert "orange" in off.lower()  # the base model learned it in its world (the adapter must not be needed)


def test_its_base_reads_the_gripper_from_the_image_and_the_image_swap_probe_shows_it(backend, tmp_path):
    """The true answers about the gripper (where it is, open or not, what it holds) on fresh scenes lose
    more with another scene's image in place of their own: the base learned to read them from pixels.
    (Its answers about where named things are do not: README, "The micro model".)"""
    from PIL import Image

    from training.micro.base import conversation_messages
    from training.micro.probe import probe_image_use
    from training.micro.world import HELDOUT_SEED_BASE, render_scenes, scene_questions

    truths = render_scenes(tmp_path, [HELDOUT_SEED_BASE + 10_000 + i for i in range(24)], progress=False)
    rng = np.random.default_rng(0)
    convs, images, scenes = [], [], []
    for t in truths:
        image = Image.open(tmp_path / t.image).convert("RGB")
        for qa in scene_questions(t, rng, 3, phrasing=0, kinds=("gripper_coords", "gripper_open", "holding")):
            convs.append(conversation_messages([qa], with_image=True))
            images.append(image)
            scenes.append(t.seed)
    use = probe_image_use(backend, convs, images, scenes, adapter=False)
    assert len(use.own_nll) == len(convs) >= 48 and use.tokens > 0
    assert use.gap > max(0.05, 2 * use.gap_se), use.as_dict()
    # padding does not leak into the score: a padded batch scores each sample as it scores alone
    alone = probe_image_use(backend, convs[:6], images[:6], scenes[:6], adapter=False, batch_size=1)
    batched = probe_image_use(backend, convs[:6], images[:6], scenes[:6], adapter=False, batch_size=6)
    assert batched.own_nll == pytest.approx(alone.own_nll, abs=1e-3) and batched.tokens == alone.tokens
