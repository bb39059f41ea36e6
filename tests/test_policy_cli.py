"""python -m policy: the scripted, tiny hf and openai backends in the simulation; clear errors."""

from __future__ import annotations

import subprocess
import sys

import pytest


pytest.importorskip("robot.sim.robot")
from policy.__main__ import main, match_instruction  # noqa: E402

FAST = ["--image-size", "64", "--pose-only-steps"]


def test_cli_scripted_in_sim_succeeds(capsys):
    rc = main(["--robot", "sim", "--policy", "scripted", "--validator", "sim", "--instruction", "put the carrot on the plate", "--seed", "3", *FAST])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "subtasks: 1. reach for the carrot" in out and "[actions] Actions: [[" in out and "verdict (sim" in out
    assert "success: 1/1 (100%)" in out
    assert "put the carrot on the plate" in out.splitlines()[-2]


def test_cli_runs_several_episodes_of_a_task(capsys):
    rc = main(["--task", "pick_up", "--episodes", "2", "--seed", "10", "--quiet", *FAST])
    out = capsys.readouterr().out
    assert rc == 0 and "success: 2/2" in out and "[actions]" not in out


def test_instruction_matching_in_other_languages():
    task, lang = match_instruction("recoge la zanahoria")
    assert task.name == "pick_up" and task.object == "carrot" and lang == "es"
    task, lang = match_instruction("Put the carrot in the pot.")
    assert task.name == "pick_and_place" and task.target == "pot"


def test_cli_tiny_hf_model_runs_and_fails_cleanly(capsys, tiny_model_dir, tiny_adapter_dir, one_thread):
    rc = main(["--policy", "hf", "--model", str(tiny_model_dir), "--adapter", str(tiny_adapter_dir), "--task", "pick_up",
               "--max-retries", "0", *FAST])
    out = capsys.readouterr().out
    assert rc == 1 and "REJECTED" not in out and "[actions] Actions: [" in out
    assert "success: 0/1" in out and "after 1 attempts" in out


def test_cli_openai_backend_against_the_test_server(capsys, chat_server):
    rc = main(["--policy", "openai", "--server", chat_server.url, "--model", "vlm2vla", "--task", "pick_up", "--max-retries", "0", *FAST])
    out = capsys.readouterr().out
    assert rc == 1 and "REJECTED" not in out and "success: 0/1" in out
    assert any(r.get("structured_outputs") for r in chat_server.requests)


def test_a_model_runs_an_instruction_the_simulator_cannot_name(capsys, chat_server):
    """The scripted expert refuses it (below); a model reads it itself, its own validator judges, and
    the result says there is no ground truth to score against."""
    rc = main(["--policy", "openai", "--server", chat_server.url, "--model", "vlm2vla", "--instruction", "pick up the purple dragon",
               "--max-retries", "0", "--quiet", *FAST])
    out, err = capsys.readouterr()
    assert "the simulator has no task like “pick up the purple dragon”" in err and "self validator judges each subtask" in err
    last = out.rstrip().splitlines()[-1]  # the random model's own verdicts decide, either way
    assert last.startswith(f"loop success: {1 - rc}/1  [the self validator's verdicts"), last
    assert "pick up the purple dragon" in out and any(r.get("structured_outputs") for r in chat_server.requests)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--policy", "hf", "--task", "pick_up"], "--policy hf needs --model"),
        (["--policy", "openai", "--task", "pick_up"], "--policy openai needs --server"),
        (["--instruction", "juggle three eggs"], "the simulator has no task like"),
        (["--task", "juggle"], "unknown task"),
        (["--policy", "hf", "--model", "/nonexistent/model", "--task", "pick_up"], "does not exist"),
        (["--task", "pick_up", "--validator", "gemini"], "GEMINI_API_KEY"),
    ],
)
def test_cli_errors_are_one_line(capsys, monkeypatch, argv, message):
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    rc = main([*argv, *FAST])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and err.startswith("error: ") and len(err.strip().splitlines()) == 1


def test_cli_help_runs_as_a_module():
    r = subprocess.run([sys.executable, "-m", "policy", "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "--policy" in r.stdout and "--validator" in r.stdout


@pytest.mark.parametrize("backend", ["scripted", "hf"])
def test_a_cli_run_ends_with_its_result_and_nothing_on_stderr(backend, request):
    """No library noise: no "nanobind: leaked ... triton" report at exit, no weight-loading bar with --quiet."""
    argv = ["--task", "pick_up", "--episodes", "1", "--quiet", "--max-retries", "0", *FAST]
    if backend == "hf":
        argv += ["--policy", "hf", "--model", str(request.getfixturevalue("tiny_model_dir"))]
    r = subprocess.run([sys.executable, "-m", "policy", *argv], capture_output=True, text=True, timeout=300)
    assert r.returncode in (0, 1) and r.stdout.splitlines()[-1].startswith("success: "), r.stdout + r.stderr
    assert r.stderr == ""
