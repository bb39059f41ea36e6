"""The stage formats: what the trainer writes, the policy parses."""

import re

import numpy as np
import pytest

from policy.language import plan_phrase, verbalize_actions
from policy.prompts import (
    PromptFormatError,
    action_prompt,
    action_stage_regex,
    actions_start,
    format_plan_actions,
    format_subtasks,
    format_verdict,
    parse_plan_actions,
    parse_subtasks,
    parse_verdict,
    subtasks_prompt,
    user_message,
    verdict_regex,
)


def test_stage_formats_round_trip():
    subtasks = ["reach for the carrot", "grasp the carrot"]
    assert parse_subtasks(format_subtasks(subtasks)) == subtasks
    assert parse_subtasks("Sure!\n1) reach for the carrot\n\n2. grasp the carrot\n") == subtasks
    deltas, grip = np.array([[0.01, 0, -0.02], [0, 0, -0.01]]), np.array([1.0, 0.0])
    plan, actions = plan_phrase(deltas.sum(0), "close"), verbalize_actions(deltas, grip)
    text = format_plan_actions(plan, actions)
    assert re.fullmatch(action_stage_regex(), text), text
    parsed = parse_plan_actions(text)
    assert (parsed.plan, parsed.actions) == (plan, actions)
    v = parse_verdict(format_verdict(True, "the carrot is  held"))
    assert v.done and v.reason == "the carrot is held"
    assert not parse_verdict("No. The gripper is empty").done


def test_verdicts_written_match_the_constrained_grammar():
    for done, reason in [(True, "the carrot is held"), (False, "the gripper is empty, retry")]:
        text = format_verdict(done, reason)
        assert re.fullmatch(verdict_regex(), text), text
        assert parse_verdict(text) == parse_verdict(re.fullmatch(verdict_regex(), text).group(0))
    assert not re.fullmatch(verdict_regex(), "maybe: not sure")


def test_actions_start_splits_a_streamed_stage2_answer():
    text = format_plan_actions("move down", "[[move down 2.0 cm]]")
    at = actions_start(text)
    assert text[:at] == "Plan: move down\n" and text[at:] == "Actions: [[move down 2.0 cm]]"
    for n in range(len(text)):  # every prefix while streaming: -1 until the whole marker is there
        got = actions_start(text[:n])
        assert got == (at if n >= at + len("Actions:") else -1), n
    assert actions_start("Actions: [[move up 1.0 cm]]") == 0


def test_prompts_name_the_stage_inputs():
    assert "put the carrot on the plate" in subtasks_prompt("put the carrot\n on the plate")
    p = action_prompt("put the carrot on the plate", ["reach for the carrot", "grasp the carrot"], 1)
    assert "Current subtask (2): grasp the carrot" in p
    with pytest.raises(IndexError):
        action_prompt("x", ["a"], 1)
    assert user_message("hi")["content"][0] == {"type": "image"}


@pytest.mark.parametrize("bad, fn", [
    ("I cannot see a robot", parse_subtasks),
    ("1. reach\n3. grasp", parse_subtasks),
    ("[[move up 1.0 cm]]", parse_plan_actions),
    ("Plan: move up", parse_plan_actions),
    ("maybe", parse_verdict),
])
def test_malformed_stage_output_is_one_clear_error(bad, fn):
    with pytest.raises(PromptFormatError, match="expected"):
        fn(bad)
