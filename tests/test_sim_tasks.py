"""Tasks, instructions and the scripted expert (physics only, no rendering: fast)."""

import numpy as np
import pytest

from robot.sim import TASKS, ScriptedExpert, SimRobot, languages, make_task, run_expert
from robot.sim.expert import Segment
from robot.sim.scene import FLAGS, PICKABLES, draw_flag


@pytest.fixture(scope="module")
def sim():
    return SimRobot()


@pytest.mark.parametrize("name", list(TASKS))
def test_expert_succeeds_on_20_seeds(sim, name):
    wins = 0
    for seed in range(20):
        task = make_task(name, seed)
        sim.reset(seed, task)
        r = run_expert(sim, task, noise=0.002, seed=seed)
        wins += r.success
        if r.success:
            assert all(r.subtask_done), (seed, task, r.subtask_done)
    assert wins >= 19, f"{name}: expert succeeded on {wins}/20 seeds"


@pytest.mark.parametrize("name", list(TASKS))
def test_segments_are_bridge_like(sim, name):
    task = make_task(name, 3)
    sim.reset(3, task)
    e = ScriptedExpert(sim, task, noise=0.003, seed=1)
    subtasks = e.subtasks()
    assert subtasks == task.subtasks(sim) and len(subtasks) >= 3
    for i, phrase in enumerate(subtasks):
        seg = e.plan_segment(i)
        assert isinstance(seg, Segment) and seg.subtask == phrase
        assert seg.deltas.shape == (len(seg.gripper), 3) and len(seg) > 0
        assert np.all(np.linalg.norm(seg.deltas, axis=1) <= 0.035)
        assert set(np.unique(seg.gripper)) <= {0.0, 1.0}
        for d, g in zip(seg.deltas, seg.gripper):
            sim.move(d, g)
        assert task.subtask_done(sim, i), (i, phrase)
    o = e.phases[0].object
    assert subtasks[:3] == [f"reach for the {o}", f"grasp the {o}", f"lift the {o}"]


def test_subtask_phrases_name_the_objects(sim):
    task = make_task("pick_and_place", 0, object="carrot", target="plate")
    sim.reset(0, task)
    assert ScriptedExpert(sim, task).subtasks() == [
        "reach for the carrot",
        "grasp the carrot",
        "lift the carrot",
        "move the carrot above the plate",
        "release the carrot",
    ]


def test_expert_replans_after_a_failed_grasp(sim):
    task = make_task("pick_up", 9, object="eggplant")
    sim.reset(9, task)
    e = ScriptedExpert(sim, task)
    seg = e.plan_segment(0)
    for d, g in zip(seg.deltas, seg.gripper):
        sim.move(d, g)
    assert task.subtask_done(sim, 0)
    # someone nudges the eggplant 6 cm away before the gripper closes
    a = sim.model.joint("eggplant").qposadr[0]
    sim.data.qpos[a + 1] += 0.06 if sim.data.qpos[a + 1] < 0.05 else -0.06
    seg = e.plan_segment(1)
    for d, g in zip(seg.deltas, seg.gripper):
        sim.move(d, g)
    assert not task.subtask_done(sim, 1)  # the grasp missed: ground truth says so
    for i in range(3):  # plan again from the new ground truth
        seg = e.plan_segment(i)
        for d, g in zip(seg.deltas, seg.gripper):
            sim.move(d, g)
    assert task.success(sim)


def test_pick_and_place_success_needs_the_object_on_the_target(sim):
    task = make_task("pick_and_place", 4, object="banana", target="towel")
    sim.reset(4, task)
    assert not task.success(sim)
    e = ScriptedExpert(sim, task)
    for i in range(4):  # everything but the release: held above the towel is not "placed"
        seg = e.plan_segment(i)
        for d, g in zip(seg.deltas, seg.gripper):
            sim.move(d, g)
    assert not task.success(sim) and task.subtask_done(sim, 3)
    seg = e.plan_segment(4)
    for d, g in zip(seg.deltas, seg.gripper):
        sim.move(d, g)
    assert task.success(sim)


def test_pick_place_lift_needs_the_placement_first(sim):
    task = make_task("pick_place_lift", 2, object="carrot", target="plate")
    sim.reset(2, task)
    e = ScriptedExpert(sim, task)
    for i in range(3):  # pick and lift, but never place
        seg = e.plan_segment(i)
        for d, g in zip(seg.deltas, seg.gripper):
            sim.move(d, g)
    assert not task.success(sim)  # lifted, but it was never on the plate


def test_semantic_task_targets_the_item_above_the_named_card(sim):
    for seed in range(6):
        task = make_task("pick_up_semantic", seed)
        sim.reset(seed, task)
        pos = sim.initial_positions
        obj = task.target_object(sim)
        card = pos[task.flag]
        assert pos[obj][0] > card[0] + 0.05 and abs(pos[obj][1] - card[1]) < 0.03
        for other_flag in FLAGS:
            if other_flag != task.flag:
                assert abs(pos[other_flag][1] - card[1]) > 0.1  # distractors beyond the other cards
    # lifting a distractor is not success
    task = make_task("pick_up_semantic", 0, flag="japan")
    sim.reset(0, task)
    wrong = next(p for p in PICKABLES if p != task.target_object(sim))
    from robot.sim.tasks import PickUp

    run_expert(sim, PickUp(object=wrong))
    assert not task.success(sim)


@pytest.mark.parametrize("name", list(TASKS))
def test_instructions_in_every_language(sim, name):
    task = make_task(name, 1)
    texts = {lang: task.instruction(lang) for lang in languages()}
    assert set(texts) == {"en", "es", "zh", "hi"}
    assert len(set(texts.values())) == 4 and all("{" not in t for t in texts.values())
    assert task.instruction() == texts["en"]
    with pytest.raises(ValueError, match="no instructions in language 'fr'"):
        task.instruction("fr")


def test_english_instructions_read_naturally():
    assert make_task("pick_up", 0, object="carrot").instruction() == "pick up the carrot"
    assert make_task("pick_and_place", 0, object="eggplant", target="pot").instruction() == "put the eggplant in the pot"
    assert make_task("pick_up_semantic", 0, flag="japan").instruction() == "pick up the item above the Japanese flag"
    assert make_task("pick_up", 0, object="carrot").instruction("es") == "recoge la zanahoria"


def test_bad_task_parameters_are_refused(sim):
    with pytest.raises(ValueError, match="unknown object 'apple'"):
        make_task("pick_up", 0, object="apple")
    with pytest.raises(ValueError, match="unknown target"):
        make_task("pick_and_place", 0, target="sink")
    with pytest.raises(ValueError, match="unknown flag"):
        make_task("pick_up_semantic", 0, flag="mars")
    task = make_task("pick_up", 0)
    sim.reset(0, task)
    with pytest.raises(IndexError, match="3 subtasks"):
        task.subtask_done(sim, 3)
    with pytest.raises(IndexError):
        ScriptedExpert(sim, task).plan_segment(-1)


def test_task_parameters_come_from_the_seed():
    assert make_task("pick_and_place", 5) == make_task("pick_and_place", 5)
    assert len({make_task("pick_and_place", s) for s in range(30)}) > 5


def test_flags_are_drawn_distinctly():
    imgs = {f: draw_flag(f) for f in FLAGS}
    japan = imgs["japan"]
    assert tuple(japan[48, 72]) == (188, 0, 45) and tuple(japan[48, 10]) == (255, 255, 255)
    assert tuple(imgs["italy"][48, 20]) == (0, 146, 70) and tuple(imgs["italy"][48, 130]) == (206, 43, 55)
    assert tuple(imgs["brazil"][8, 20]) == (0, 151, 57)
    with pytest.raises(ValueError, match="unknown flag"):
        draw_flag("atlantis")
