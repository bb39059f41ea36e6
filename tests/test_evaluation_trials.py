"""evaluation.trials: the Wilson interval, seeds disjoint from training's, the table's shape, resumption after a kill."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evaluation.policies import PolicySpecError, parse_policy
from evaluation.stats import wilson_interval
from evaluation.store import ResultsError, check_manifest
from evaluation.suites import SUITES, suite_rows, trials_for
from evaluation.tables import TRIALS_HEADER, summarize, trials_markdown
from evaluation.trials import main, plan
from training.seeds import EVAL_SEED_BASE, check_training_seeds, is_eval_seed

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------ Wilson interval


def test_wilson_matches_published_values():
    # Reference values: Newcombe (1998), Table I (Wilson score method without continuity correction).
    for (k, n), (lo, hi) in {(81, 263): (0.2553, 0.3662), (15, 148): (0.0624, 0.1605), (0, 20): (0.0, 0.1611), (1, 29): (0.0061, 0.1718)}.items():
        got = wilson_interval(k, n)
        assert got == pytest.approx((lo, hi), abs=1e-4), (k, n, got)
    assert wilson_interval(5, 5)[1] == 1.0 and wilson_interval(0, 5)[0] == 0.0


@given(st.integers(1, 500).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_wilson_contains_the_rate_and_narrows_with_more_trials(kn):
    k, n = kn
    lo, hi = wilson_interval(k, n)
    assert 0.0 <= lo <= k / n <= hi <= 1.0
    lo4, hi4 = wilson_interval(4 * k, 4 * n)
    assert hi4 - lo4 < hi - lo


def test_wilson_refuses_impossible_counts():
    with pytest.raises(ValueError, match="0 <= successes <= n"):
        wilson_interval(6, 5)


# ------------------------------------------------------------------ seeds


def test_evaluation_seeds_are_disjoint_from_every_training_seed():
    seeds = {t.seed for r in SUITES["fig5"] for t in trials_for(r, 90)}
    assert min(seeds) == EVAL_SEED_BASE and all(is_eval_seed(s) for s in seeds)
    # every seed the project trains or tests with: README commands, tests, benchmarks (`--seed N`, `seed=N`)
    used = []
    for path in [ROOT / "README.md", *ROOT.glob("tests/*.py"), *ROOT.glob("benchmarks/*.py"), *ROOT.glob("training/*.py")]:
        if path.name == Path(__file__).name:
            continue
        used += [int(m) for m in re.findall(r"(?:--seed[ =]|seed=)(\d+)", path.read_text(encoding="utf-8"))]
    assert used and not any(is_eval_seed(s) for s in used)
    from training.collect import CollectConfig

    assert not is_eval_seed(CollectConfig.__dataclass_fields__["seed"].default)


def test_training_refuses_evaluation_seeds(capsys):
    check_training_seeds(0, 20)
    with pytest.raises(ValueError, match="reach into the evaluation's seeds"):
        check_training_seeds(EVAL_SEED_BASE - 5, 10)
    from training.collect import main as collect

    with pytest.raises(SystemExit):
        collect(["--task", "pick_up", "--episodes", "2", "--seed", str(EVAL_SEED_BASE), "--out", "unused"])
    assert "evaluation's seeds" in capsys.readouterr().err


# ------------------------------------------------------------------ suites, policies, table


def test_fig5_rows_and_multilingual_triples_the_trials():
    rows = suite_rows("fig5")
    assert [r.task for r in rows] == ["pick_up", "pick_place_lift", "pick_and_place", "pick_up", "pick_up_semantic"]
    multi = trials_for(rows[3], 5)
    assert len(multi) == 15 and {t.lang for t in multi} == {"es", "zh", "hi"}
    # paired scenes: the multilingual row asks for the English row's scenes
    assert {t.seed for t in multi} == {t.seed for t in trials_for(rows[0], 5)}
    specs = [parse_policy("scripted"), parse_policy("hf:model=m/,adapter=a/,label=b")]
    pairs = plan(rows, specs, 2)
    assert len(pairs) == 2 * 7 * 2 and len({(s.label, t.id) for s, t in pairs}) == len(pairs)
    assert [t.index for _, t in pairs[: 14]] == [0] * 14  # scene-major


def test_policy_specs_parse_and_refuse_clearly():
    s = parse_policy("hf:model=tiny/,adapter=run/,no_adapter=1,validator=self,max_retries=1")
    assert (s.kind, s.model, s.adapter, s.no_adapter, s.validator, s.max_retries, s.label) == ("hf", "tiny/", "run/", True, "self", 1, "hf-tiny-base")
    for bad, msg in [("hf", "needs model="), ("gpt", "unknown kind"), ("hf:model", "key=value"), ("openai:model=x", "needs server=")]:
        with pytest.raises(PolicySpecError, match=msg):
            parse_policy(bad)


def _rec(row, policy, seed, success, retries=0, rejected=0, seconds=1.0):
    return {"row": row, "policy": policy, "seed": seed, "success": success, "retries": retries, "rejected": rejected, "seconds": seconds}


def test_table_has_one_line_per_row_and_policy():
    recs = [_rec(r, p, EVAL_SEED_BASE + k, k % 2 == 0, retries=k, rejected=1) for r in ("a", "b") for p in ("x", "y") for k in range(3)]
    cells = summarize(recs, ["b", "a"], ["y", "x"])
    assert [(c.row, c.policy) for c in cells] == [("b", "y"), ("b", "x"), ("a", "y"), ("a", "x")]
    c = cells[0]
    assert (c.n, c.successes, c.mean_retries, c.rejected) == (3, 2, 1.0, 3)
    lines = trials_markdown(cells, {"a": "Row A"}).splitlines()
    assert len(lines) == 2 + 4 and all(line.count("|") == len(TRIALS_HEADER) + 1 for line in lines)
    assert "| Row A | x | 67% (2/3) | 21–94% | 3 | — |" in lines[-1]  # no expert lists: not known


def test_first_subtask_right_counts_only_trials_whose_expert_list_is_known():
    expert = ["reach for the carrot", "grasp the carrot", "lift the carrot"]
    recs = [
        {**_rec("a", "x", 1, False), "subtasks_planned": list(expert), "subtasks_expected": expert},
        {**_rec("a", "x", 2, False), "subtasks_planned": ["reach for the banana"], "subtasks_expected": expert},
        {**_rec("a", "x", 3, False), "subtasks_planned": [], "subtasks_expected": expert},  # no list parsed
        _rec("a", "x", 4, False),  # a person's trial: no expert list
    ]
    (cell,) = summarize(recs)
    assert (cell.first_subtask_right, cell.first_subtask_known, cell.n) == (1, 3, 4)
    assert "| 4 | 1/3 |" in trials_markdown([cell])


def test_a_resumed_run_refuses_other_settings(tmp_path):
    base = {"suite": "fig5", "robot": "sim", "seed_base": EVAL_SEED_BASE, "image_size": 64, "trials": 2, "rows": [], "policies": {"p": {"kind": "scripted"}}}
    (tmp_path / "manifest.json").write_text(json.dumps(base))
    assert check_manifest(tmp_path, {**base, "trials": 5})["trials"] == 5
    with pytest.raises(ResultsError, match="policy 'p' with other settings"):
        check_manifest(tmp_path, {**base, "policies": {"p": {"kind": "hf"}}})
    with pytest.raises(ResultsError, match="image_size"):
        check_manifest(tmp_path, {**base, "image_size": 256})


# ------------------------------------------------------------------ end to end, killed and resumed

FAST = ["--image-size", "32", "--pose-only-steps", "--quiet"]


def test_trials_cli_runs_every_row(tmp_path, capsys):
    rc = main(["--suite", "fig5", "--policy", "scripted", "--trials", "1", "--out", str(tmp_path), *FAST])
    out = capsys.readouterr().out
    assert rc == 0
    for title in ("Pick Up |", "Pick Place & Lift", "Pick and Place", "Pick Up-T", "Pick Up-A"):
        assert title in out
    assert "| Pick Up-T (es, zh, hi) | scripted | 100% (3/3) |" in out
    assert len(list((tmp_path / "trials").glob("*/*/*.json"))) == 7
    rec = json.loads((tmp_path / "trials/scripted/pick_up_multilingual/zh-1000000.json").read_text())
    assert rec["seed"] == EVAL_SEED_BASE and rec["instruction"].startswith("拿起") and rec["success"]
    assert rec["subtasks_planned"] == rec["subtasks_expected"] and rec["subtasks_expected"][0].startswith("reach for the ")
    assert "| Pick Up-A (semantic) | scripted | 100% (1/1) | 21–100% | 1 | 1/1 |" in out  # the expert names the flag's object
    assert (tmp_path / rec["log_dir"] / "episode.jsonl").exists()


def test_killed_run_resumes_with_the_same_trial_set(tmp_path):
    out = tmp_path / "res"
    cmd = [sys.executable, "-m", "evaluation.trials", "--rows", "pick_up_semantic,pick_up", "--policy", "scripted",
           "--trials", "3", "--out", str(out), *FAST]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and len(list(out.glob("trials/*/*/*.json"))) < 2 and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # mid-run, likely mid-trial
    proc.wait()
    first = {p: p.read_text() for p in out.glob("trials/*/*/*.json")}
    assert 2 <= len(first) < 6, "the run should have been killed part-way"
    rc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert rc.returncode == 0, rc.stderr
    assert f"{len(first)} already done, {6 - len(first)} to run" in rc.stderr
    done = {p: p.read_text() for p in out.glob("trials/*/*/*.json")}
    want = {f"trials/scripted/{r}/en-{EVAL_SEED_BASE + k}.json" for r in ("pick_up", "pick_up_semantic") for k in range(3)}
    assert {str(p.relative_to(out)) for p in done} == want
    assert all(done[p] == text for p, text in first.items()), "a finished trial was run again"
    assert not list(out.glob("**/.*.tmp"))
    # one episode log per trial: a killed attempt's partial log was replaced, not kept beside the new one
    assert all(len(list(d.iterdir())) == 1 for d in out.glob("logs/scripted/*/*"))
    assert len(list(out.glob("logs/scripted/*/*"))) == 6


def test_real_arm_mode_asks_a_person_and_records_their_outcome(tmp_path, monkeypatch, capsys):
    """--robot widowx: the person sets up the scene, gives each verdict and the trial's outcome, which
    is what the table counts. A simulated arm stands in for the WidowX (the same Robot protocol), and
    the model is the simulator's expert for the scene (the session itself refuses `scripted` there)."""
    import evaluation.runner as runner
    from evaluation.runner import RealSession, TrialError, TrialSettings
    from evaluation.store import trial_path
    from policy.sim_episode import sim_episode
    from robot.sim import SimConfig, SimRobot
    from robot.sim.tasks import make_task

    sim = SimRobot(SimConfig(image_size=32))
    (trial,) = trials_for(suite_rows("fig5", ["pick_up"])[0], 1)
    monkeypatch.setattr(runner, "_backend",
                        lambda spec: sim_episode(sim, make_task(trial.task, seed=trial.seed), seed=trial.seed).backend)
    asked = []

    def person(question: str) -> str:
        asked.append(question)
        return "" if "press Enter" in question else ("n" if "did the trial succeed" in question else "y")

    session = RealSession(sim, TrialSettings(out=tmp_path, image_size=32, pose_only_steps=True), ask=person)
    with pytest.raises(TrialError, match="scripted"):
        session.run(parse_policy("scripted"), trial)
    spec = parse_policy("hf:model=a-model,label=arm")
    rec = session.run(spec, trial)
    assert "set up the scene for" in capsys.readouterr().out
    verdicts = [q for q in asked if q.strip().startswith("is '")]
    assert "press Enter" in asked[0] and "did the trial succeed" in asked[-1] and len(asked) == len(verdicts) + 2
    assert len(verdicts) == rec["subtasks_done"] >= 2  # one verdict per subtask, each answered "done"
    assert rec["loop_success"] and not rec["success"]  # the person's word is the outcome
    assert rec["robot"] == "widowx" and rec["outcome_by"] == "person" and rec["seed"] == EVAL_SEED_BASE
    assert json.loads(trial_path(tmp_path, "arm", trial).read_text()) == rec
    (cell,) = summarize([rec])
    assert (cell.n, cell.successes) == (1, 0)
