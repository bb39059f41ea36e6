"""evaluation.vqa: lmms-eval end to end offline (toy MME task, tiny model, base and adapter in one
process, in the eval environment) and held-out JSONL accuracy in the default one."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from evaluation.vqa import accuracy, heldout_scores, load_heldout, normalize_answer, primary_metric, relaxed_match, VQAError

ROOT = Path(__file__).resolve().parents[1]
EVAL_PYTHON = Path(os.environ.get("VLM2VLA_EVAL_PYTHON", ROOT / ".venv-eval" / "bin" / "python"))


def test_answers_are_compared_after_vqa_normalization():
    assert normalize_answer(" The Carrot. ") == "carrot" and normalize_answer("Yes!") == "yes"
    items = [{"image": None, "question": q, "answer": a} for q, a in [("colour?", "red"), ("count?", "2"), ("what?", "a plate")]]
    said = {"colour?": "Red.", "count?": "two", "what?": "plate"}
    assert accuracy(lambda im, q: said[q], items) == pytest.approx(200 / 3)


def test_relaxed_match_judges_numbers_as_measurements():
    ref = "x 39.4 cm, y 2.2 cm, z 9.2 cm"
    assert relaxed_match("x 40.1 cm, y 2.2 cm, z 7.3 cm", ref, 2.0)
    assert not relaxed_match("x 40.1 cm, y 2.2 cm, z 7.1 cm", ref, 2.0)  # one number 2.1 off
    assert not relaxed_match("x 39.4 cm, y 2.2 cm", ref, 2.0)  # a number missing
    assert not relaxed_match("22.1 cm atrás, 1.7 cm a la izquierda", "22.1 cm atrás, 1.7 cm a la derecha", 2.0)  # words differ
    assert relaxed_match("22,0 cm atrás", "22.1 cm atrás", 0.5)  # a decimal comma reads as a point
    assert relaxed_match("The plate.", "plate", 2.0) and not relaxed_match("pot", "plate", 2.0)  # no numbers: exact
    assert relaxed_match("The 3.", "3", 0.0)  # whatever exact match accepts
    items = [{"kind": "coords", "answer": ref}, {"kind": "colour", "answer": "red"}]
    s = heldout_scores(items, ["x 39.0 cm, y 2.2 cm, z 9.2 cm", "red"], 1.0)
    assert s["exact"] == 50.0 and s["relaxed"] == 100.0
    assert s["by_kind"] == {"colour": {"n": 1, "exact": 100.0, "relaxed": 100.0}, "coords": {"n": 1, "exact": 0.0, "relaxed": 100.0}}


def test_primary_metric_skips_alias_and_stderr():
    assert primary_metric({"alias": "mme", "mme_perception_score,none": 1200.5, "mme_perception_score_stderr,none": "N/A"}) == ("mme_perception_score", 1200.5)
    assert primary_metric({"alias": "x"}) is None


def test_heldout_records_are_checked(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    (tmp_path / "ok.jsonl").write_text(json.dumps({"image": "a.png", "question": "q", "answer": "a"}) + "\n")
    assert load_heldout(tmp_path / "ok.jsonl")[0]["image"].size == (8, 8)
    (tmp_path / "bad.jsonl").write_text(json.dumps({"image": "a.png", "question": "q"}) + "\n")
    with pytest.raises(VQAError, match="bad.jsonl:1: not a VQA record.*needs image, question, answer"):
        load_heldout(tmp_path / "bad.jsonl")


def test_heldout_cli_scores_base_and_adapter(tiny_model_dir, tiny_adapter_dir, tmp_path, capsys):  # noqa: F811
    from evaluation.vqa import main

    for i, c in enumerate(["red", "blue"]):
        Image.new("RGB", (32, 32), c).save(tmp_path / f"{i}.png")
    (tmp_path / "held.jsonl").write_text("".join(json.dumps({"image": f"{i}.png", "question": "What colour is it?", "answer": c}) + "\n" for i, c in enumerate(["red", "blue"])))
    out = tmp_path / "res"
    rc = main(["heldout", "--model", str(tiny_model_dir), "--adapter", str(tiny_adapter_dir), "--label", "lora",
               "--base-label", "tiny", "--data", str(tmp_path / "held.jsonl"), "--max-new-tokens", "4", "--out", str(out)])
    text = capsys.readouterr().out
    assert rc == 0 and "| benchmark | tiny | lora | lora: % of base |" in text
    data = json.loads((out / "vqa.json").read_text())
    assert data["base"] == "tiny" and set(data["scores"]["held"]) == {"tiny", "lora"}
    assert all(0.0 <= v <= 100.0 for v in data["scores"]["held"].values())
    # a full fine-tune is a model of its own: scored with --tuned, its column joins the table of that base
    rc = main(["heldout", "--model", str(tiny_model_dir), "--tuned", "--base-label", "full", "--tolerance", "0.5",
               "--data", str(tmp_path / "held.jsonl"), "--max-new-tokens", "4", "--out", str(out)])
    text = capsys.readouterr().out
    data = json.loads((out / "vqa.json").read_text())
    assert rc == 0 and data["base"] == "tiny" and data["models"] == ["tiny", "lora", "full"]
    assert set(data["scores"]["held"]) == {"tiny", "lora", "full"} and set(data["scores"]["held (±0.5)"]) == {"full"}
    answers = json.loads((out / "vqa-answers" / "held.json").read_text())
    assert answers["tolerance"] == 0.5 and len(answers["items"]) == 2 and set(answers["items"][0]["answers"]) == {"tiny", "lora", "full"}
    # --tuned with an adapter: only the adapter is asked (the base's column is already in OUT)
    assert main(["heldout", "--model", str(tiny_model_dir), "--adapter", str(tiny_adapter_dir), "--label", "lora2", "--tuned",
                 "--data", str(tmp_path / "held.jsonl"), "--max-new-tokens", "4", "--out", str(out)]) == 0
    capsys.readouterr()
    answers = json.loads((out / "vqa-answers" / "held.json").read_text())
    assert set(answers["items"][0]["answers"]) == {"tiny", "lora", "full", "lora2"}  # earlier runs' answers kept
    assert json.loads((out / "vqa.json").read_text())["models"][-1] == "lora2"
    assert main(["heldout", "--model", str(tiny_model_dir), "--tuned", "--data", str(tmp_path / "held.jsonl"),
                 "--out", str(tmp_path / "empty")]) == 2
    assert "score the base model first" in capsys.readouterr().err


@pytest.mark.slow
def test_lmms_eval_runs_the_toy_task_on_base_and_adapter_in_one_process(tiny_model_dir, tiny_adapter_dir, tmp_path):  # noqa: F811
    if not EVAL_PYTHON.exists():
        pytest.fail(f"{EVAL_PYTHON} is missing: the lmms-eval environment is built by `make eval-setup` (bash .ci/setup-eval.sh)")
    from evaluation.toy_task import TASK, write_toy_task

    write_toy_task(tmp_path / "toy", pictures=2)
    out = tmp_path / "res"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    r = subprocess.run([str(EVAL_PYTHON), "-m", "evaluation.vqa", "lmms", "--model", str(tiny_model_dir), "--adapter", str(tiny_adapter_dir),
                        "--base-label", "tiny", "--label", "lora", "--include-path", str(tmp_path / "toy"), "--tasks", TASK, "--out", str(out)],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=400)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip().splitlines()[-1].startswith("scores in ")  # ends with its result
    data = json.loads((out / "vqa.json").read_text())
    assert data["models"] == ["tiny", "lora"] and data["metrics"][TASK] == "mme_perception_score"
    assert set(data["scores"][TASK]) == {"tiny", "lora"} and all(0 <= v <= 200 for v in data["scores"][TASK].values())
    # one process, one loaded model: answered as the base, then with the adapter switched on
    answers = {}
    for label in ("tiny", "lora"):
        results = list((out / "lmms" / label).glob("**/*_results.json"))
        assert len(results) == 1 and TASK in json.loads(results[0].read_text())["results"]
        samples = list((out / "lmms" / label).glob(f"**/*samples_{TASK}*.jsonl"))
        assert samples, f"no samples file for {label}"
        answers[label] = [json.loads(line)["filtered_resps"] for line in samples[0].read_text().splitlines()]
    assert len(answers["tiny"]) == 4 and answers["tiny"] != answers["lora"], "the adapter made no difference: it was not toggled"
