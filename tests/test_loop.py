"""The closed loop in the MuJoCo simulation: scripted expert success on every task, event
order, retries, e-stop, step-through, logging, and the tiny hf model end to end."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from policy.events import (
    ActionsProposed,
    ActionsRejected,
    AwaitingUser,
    EpisodeDone,
    EpisodeStarted,
    Retry,
    StepExecuted,
    SubtasksPlanned,
    SubtasksRejected,
    SubtaskStarted,
    Tokens,
    VerdictGiven,
)
from policy.backends import TextStream
from policy.episode_log import load_log
from policy.loop import ClosedLoop, LoopConfig
from policy.sim_episode import sim_episode
from policy.validators import ManualValidator, NoneValidator

sim_mod = pytest.importorskip("robot.sim.robot")
from robot.sim.robot import SimConfig, SimRobot  # noqa: E402
from robot.sim.tasks import TASKS, make_task  # noqa: E402

FAST = dict(observe_steps=False)


@pytest.fixture(scope="module")
def sim():
    s = SimRobot(SimConfig(image_size=64), seed=0)
    s.connect()
    yield s
    s.disconnect()


def events_of(loop, instruction, **kw):
    return list(loop.run(instruction, **kw))


@pytest.mark.parametrize("name", sorted(TASKS))
def test_scripted_policy_succeeds_on_every_sim_task(sim, name):
    seeds = range(5)
    ok = 0
    for seed in seeds:
        task = make_task(name, seed=seed)
        ep = sim_episode(sim, task, seed=seed)
        loop = ClosedLoop(sim, ep.backend, ep.validator, LoopConfig(**FAST))
        events = events_of(loop, task.instruction(), seed=seed)
        done = events[-1]
        assert isinstance(done, EpisodeDone) and done.rejected == 0
        ok += bool(task.success(sim)) and done.success
    assert ok / len(seeds) >= 0.95, f"{name}: {ok}/{len(seeds)}"


def test_event_stream_order_and_contents(sim):
    task = make_task("pick_up", seed=0)
    ep = sim_episode(sim, task, seed=0)
    loop = ClosedLoop(sim, ep.backend, ep.validator, LoopConfig(**FAST))
    ev = events_of(loop, task.instruction(), seed=0)
    assert isinstance(ev[0], EpisodeStarted) and ev[0].policy == "scripted" and ev[0].seed == 0
    assert isinstance(ev[-1], EpisodeDone) and sum(isinstance(e, EpisodeDone) for e in ev) == 1
    planned = next(e for e in ev if isinstance(e, SubtasksPlanned))
    assert list(planned.subtasks) == task.subtasks(sim)
    assert "".join(e.text for e in ev if isinstance(e, Tokens) and e.stage == "subtasks") == planned.text
    ts = [e.t for e in ev]
    assert ts == sorted(ts)
    for i, _ in enumerate(planned.subtasks):
        prop = [e for e in ev if isinstance(e, ActionsProposed) and e.index == i]
        steps = [e for e in ev if isinstance(e, StepExecuted) and e.index == i]
        assert len(prop) == 1 and len(steps) == len(prop[0].steps) and prop[0].plan_agrees
        plan_text = "".join(e.text for e in ev if isinstance(e, Tokens) and e.stage == "plan" and e.index == i)
        act_text = "".join(e.text for e in ev if isinstance(e, Tokens) and e.stage == "actions" and e.index == i)
        assert plan_text == f"Plan: {prop[0].plan}\n" and act_text == f"Actions: {prop[0].actions}"
        for s, (delta, _) in zip(steps, prop[0].steps):
            assert np.allclose(s.requested, delta)
    verdicts = [e for e in ev if isinstance(e, VerdictGiven)]
    assert all(v.done and v.validator == "sim" and v.latency_s >= 0 for v in verdicts)
    t = ev[-1].timings
    assert ev[-1].success and t["total_s"] >= t["execute_s"] > 0 and t["tokens"] > 0


def test_retry_path_regenerates_until_the_validator_agrees_then_fails_at_the_limit(sim):
    task = make_task("pick_up", seed=1)
    ep = sim_episode(sim, task, seed=1)
    manual = ManualValidator()
    loop = ClosedLoop(sim, ep.backend, manual, LoopConfig(max_retries=1, **FAST))
    answers = iter([(False, "the gripper is still too high"), (True, ""), (False, "not held"), (False, "still not held")])
    ev = []
    for e in loop.run(task.instruction()):
        ev.append(e)
        if isinstance(e, AwaitingUser):
            assert e.what == "verdict" and loop.waiting == "verdict"
            threading.Timer(0.01, loop.give_verdict, args=next(answers)).start()
    retries = [e for e in ev if isinstance(e, Retry)]
    assert [(r.index, r.attempt) for r in retries] == [(0, 2), (1, 2)]
    assert retries[0].reason == "the gripper is still too high"
    # subtask 0 was generated again after the retry
    assert [e.attempt for e in ev if isinstance(e, SubtaskStarted) and e.index == 0] == [1, 2]
    assert sum(isinstance(e, ActionsProposed) and e.index == 0 for e in ev) == 2
    done = ev[-1]
    assert isinstance(done, EpisodeDone) and not done.success and done.retries == 2
    assert "subtask 2" in done.reason and "after 2 attempts" in done.reason and "still not held" in done.reason


class _GarbledSubtasks:
    """The expert, except that its first `garbled` subtask lists are not numbered lines."""

    name = "garbled"

    def __init__(self, expert, garbled: int) -> None:
        self.expert, self.garbled = expert, garbled

    def generate(self, messages, images, stage, **kw):
        if stage == "subtasks" and self.garbled > 0:
            self.garbled -= 1
            return TextStream(iter(["grab it", " then lift"]))
        return self.expert.generate(messages, images, stage, **kw)


def test_an_unparsable_subtask_list_is_its_own_event_and_asked_again(sim):
    task = make_task("pick_up", seed=0)
    ep = sim_episode(sim, task, seed=0)
    cfg = LoopConfig(constrained_subtasks=False, plan_retries=2, **FAST)
    ev = events_of(ClosedLoop(sim, _GarbledSubtasks(ep.backend, 2), ep.validator, cfg), task.instruction())
    rejected = [e for e in ev if isinstance(e, SubtasksRejected)]
    assert [r.text for r in rejected] == ["grab it then lift"] * 2 and all(r.error for r in rejected)
    assert not [e for e in ev if isinstance(e, ActionsRejected)]  # no action block was rejected
    kinds = [type(e).__name__ for e in ev]
    assert kinds.index("SubtasksPlanned") > kinds.index("SubtasksRejected") and kinds.count("SubtasksPlanned") == 1
    assert ev[-1].success and ev[-1].rejected == 2
    # no try parses: the episode ends with the reason, before any subtask starts
    ep = sim_episode(sim, task, seed=0)
    ev = events_of(ClosedLoop(sim, _GarbledSubtasks(ep.backend, 3), ep.validator, cfg), task.instruction())
    assert sum(isinstance(e, SubtasksRejected) for e in ev) == 3 and not any(isinstance(e, SubtaskStarted) for e in ev)
    assert not ev[-1].success and ev[-1].reason == "the subtask list did not parse after 3 tries"


def test_only_a_manual_validator_takes_a_verdict(sim):
    task = make_task("pick_up", seed=0)
    ep = sim_episode(sim, task, seed=0)
    with pytest.raises(ValueError, match="sim validator takes no manual verdict"):
        ClosedLoop(sim, ep.backend, ep.validator).give_verdict(True)


def test_estop_mid_episode_stops_within_one_step(sim):
    task = make_task("pick_and_place", seed=2)
    ep = sim_episode(sim, task, seed=2)
    loop = ClosedLoop(sim, ep.backend, ep.validator, LoopConfig(**FAST))
    ev = []
    for e in loop.run(task.instruction()):
        ev.append(e)
        if isinstance(e, StepExecuted) and len([x for x in ev if isinstance(x, StepExecuted)]) == 3:
            loop.estop("operator pressed e-stop")
    i = max(k for k, e in enumerate(ev) if isinstance(e, StepExecuted))
    assert sum(isinstance(e, StepExecuted) for e in ev) == 3
    assert isinstance(ev[i + 1], EpisodeDone) and len(ev) == i + 2
    assert not ev[-1].success and ev[-1].reason.startswith("e-stop")
    assert sim.safety.engaged
    sim.reset(seed=2, task=task)  # clears the latch


def test_estop_from_another_thread_during_motion(sim):
    """The latch set while a step runs: that step finishes, no further step is sent."""
    task = make_task("pick_up", seed=3)
    ep = sim_episode(sim, task, seed=3)
    loop = ClosedLoop(sim, ep.backend, ep.validator, LoopConfig(**FAST))
    steps_at_estop = []
    ev = []

    def press():
        steps_at_estop.append(sum(isinstance(e, StepExecuted) for e in ev))
        sim.safety.estop("hardware button")  # the robot's own latch, not the loop's

    gen = loop.run(task.instruction())
    for e in gen:
        ev.append(e)
        if isinstance(e, StepExecuted) and e.step == 1 and not steps_at_estop:
            t = threading.Thread(target=press)
            t.start()
            t.join()
    n_steps = sum(isinstance(e, StepExecuted) for e in ev)
    assert n_steps <= steps_at_estop[0] + 1
    assert isinstance(ev[-1], EpisodeDone) and ev[-1].reason.startswith("e-stop")
    sim.reset(seed=3, task=task)


def test_step_through_execute_edit_regenerate(sim):
    task = make_task("pick_up", seed=4)
    ep = sim_episode(sim, task, seed=4)
    start = sim.ee_pos()
    loop = ClosedLoop(sim, ep.backend, NoneValidator(), LoopConfig(step_through=True, **FAST))
    script = iter([("regenerate", None), ("edit", "[[move up 2 mm]]"), ("edit", "Actions: [[move up 9.0 cm]]")])
    ev = []
    for e in loop.run(task.instruction()):
        ev.append(e)
        if isinstance(e, AwaitingUser):
            assert e.what == "execute" and e.actions
            try:
                loop.respond(*next(script))
            except StopIteration:
                loop.stop("enough")
    proposed = [e for e in ev if isinstance(e, ActionsProposed) and e.index == 0]
    assert len(proposed) == 3 and proposed[0].actions == proposed[1].actions  # regenerated
    rejected = [e for e in ev if isinstance(e, ActionsRejected)]
    assert len(rejected) == 1 and "cm" in rejected[0].error  # "2 mm": shown, never executed
    assert proposed[2].edited and proposed[2].steps == (((0.0, 0.0, 0.09), None),)
    assert isinstance(ev[-2], AwaitingUser) and ev[-2].index == 1  # on to subtask 2, then stopped there
    steps = [e for e in ev if isinstance(e, StepExecuted)]
    assert len(steps) == 1  # only the edited block ran, clamped by the safety filter
    assert steps[0].clamps and "5.0 cm limit" in steps[0].clamps[0]
    # the 5 cm clamp is measured from the hand, which sits microns from its last target
    assert np.isclose(steps[0].executed[2], 0.05, atol=1e-4) and steps[0].ee_pos[2] > start[2] + 0.03
    assert isinstance(ev[-1], EpisodeDone) and ev[-1].reason == "enough" and ev[-1].rejected == 1
    with pytest.raises(ValueError):
        loop.respond("jump")


def test_stop_while_waiting_for_a_person_ends_promptly(sim):
    task = make_task("pick_up", seed=0)
    ep = sim_episode(sim, task, seed=0)
    loop = ClosedLoop(sim, ep.backend, ManualValidator(), LoopConfig(**FAST))
    t = None
    for e in loop.run(task.instruction()):
        if isinstance(e, AwaitingUser):
            threading.Timer(0.05, loop.stop, args=("closed the tab",)).start()
            t = time.perf_counter()
    assert isinstance(e, EpisodeDone) and e.reason == "closed the tab" and time.perf_counter() - t < 1.0


def test_every_episode_is_logged_for_replay(sim, tmp_path):
    task = make_task("pick_up", seed=5)
    ep = sim_episode(sim, task, seed=5)
    loop = ClosedLoop(sim, ep.backend, ep.validator, LoopConfig(log_dir=tmp_path))
    ev = events_of(loop, task.instruction(), seed=5)
    done = ev[-1]
    assert done.log_dir and Path(done.log_dir).parent == tmp_path
    records = load_log(done.log_dir)
    kinds = [r["type"] for r in records]
    assert kinds[0] == "EpisodeStarted" and kinds[-1] == "EpisodeDone" and "Tokens" not in kinds
    assert kinds.count("StepExecuted") == sum(isinstance(e, StepExecuted) for e in ev)
    obs = [r for r in records if r["type"] == "Observation"]
    assert obs and all(Path(r["image"]).is_file() for r in obs)
    segs = [r for r in records if r["type"] == "Segment"]
    assert [s["subtask"] for s in segs] == task.subtasks(sim)
    s = segs[0]
    assert set(s) >= {"image", "instruction", "subtasks", "subtask", "plan", "actions", "state", "displacement", "done"}
    from policy.language import block_displacement, parse_actions

    want = block_displacement(parse_actions(s["actions"]))
    assert np.allclose(s["displacement"], want, atol=0.01)  # the arm went where the block said
    from PIL import Image

    assert Image.open(s["image"]).size == (64, 64)


def test_tiny_hf_model_runs_end_to_end_every_block_parses(sim, tiny_backend):
    task = make_task("pick_up", seed=0)
    ep = sim_episode(sim, task, seed=0, backend=tiny_backend)
    loop = ClosedLoop(sim, ep.backend, ep.validator, LoopConfig(max_retries=1, **FAST))
    ev = events_of(loop, task.instruction())
    assert isinstance(ev[-1], EpisodeDone)
    assert not [e for e in ev if isinstance(e, ActionsRejected)], "a constrained block failed to parse"
    proposed = [e for e in ev if isinstance(e, ActionsProposed)]
    assert proposed and all(p.tokens > 0 and p.decode_s >= 0 for p in proposed)
    done = ev[-1]
    if not done.success:  # gibberish: the sim says not done, the loop retries once, then fails cleanly
        assert "after 2 attempts" in done.reason and done.retries >= 1
    assert not sim.safety.engaged


def test_unconstrained_gibberish_is_rejected_never_executed(sim, tiny_backend):
    task = make_task("pick_up", seed=0)
    ep = sim_episode(sim, task, seed=0, backend=tiny_backend)
    before = sim.ee_pos()
    cfg = LoopConfig(max_retries=2, constrained=False, action_tokens=24, **FAST)
    ev = events_of(ClosedLoop(sim, ep.backend, ep.validator, cfg), task.instruction())
    rejected = [e for e in ev if isinstance(e, ActionsRejected)]
    assert len(rejected) == 3 and all(r.text and r.error for r in rejected)
    assert not any(isinstance(e, StepExecuted) for e in ev)
    assert np.allclose(sim.ee_pos(), before, atol=1e-3)
    done = ev[-1]
    assert not done.success and done.rejected == 3 and "did not parse" in done.reason


def test_stop_mid_generation_frees_the_model(sim, tiny_backend):
    task = make_task("pick_up", seed=0)
    ep = sim_episode(sim, task, seed=0, backend=tiny_backend)
    loop = ClosedLoop(sim, ep.backend, ep.validator, LoopConfig(**FAST))
    ev = []
    for e in loop.run(task.instruction()):
        ev.append(e)
        if isinstance(e, Tokens) and e.stage == "plan":
            loop.stop("stop pressed while the model writes")
    assert ev[-1].reason == "stop pressed while the model writes" and not any(isinstance(e, StepExecuted) for e in ev)
    acquired = tiny_backend._lock.acquire(timeout=5)  # the generation was cancelled and the model freed
    assert acquired
    tiny_backend._lock.release()
