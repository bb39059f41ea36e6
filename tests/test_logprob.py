"""training.logprob: the action-target log-probability study (paper Fig. 3) on the tiny model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from policy.language import get_codec
from policy.model import load_model
from tests.dlan_helpers import make_dlan
from training.dlan import read_records
from training.finetune import build_samples
from training.logprob import action_logprob, action_span, logprob_study, main


pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


@pytest.fixture(scope="module")
def dlan(tmp_path_factory):
    return make_dlan(tmp_path_factory.mktemp("dlan_lp") / "d", episodes=2, steps=3)


def test_span_is_the_action_block_and_logprob_matches_the_models_own_loss(tiny_model_dir, dlan):
    lm = load_model(tiny_model_dir)
    r = read_records(dlan)[1]
    (sample,) = build_samples([r], dlan, None, ("actions",))
    img = Image.open(sample["images"][0]).convert("RGB")
    enc, span = action_span(lm.processor, sample, r["actions"], img)
    decoded = lm.processor.tokenizer.decode(enc["input_ids"][0, span])
    assert decoded.strip() == r["actions"]  # exactly the block (the space before it may share its first token)
    assert span == list(range(span[0], span[-1] + 1))
    mean_lp, n = action_logprob(lm.model, lm.processor, sample, r["actions"], img)
    labels = torch.full_like(enc["input_ids"], -100)
    labels[0, span] = enc["input_ids"][0, span]
    with torch.no_grad():
        loss = lm.model(**enc, labels=labels).loss
    assert n == len(span) and mean_lp == pytest.approx(-float(loss), abs=1e-4)


def test_study_scores_both_codecs_and_writes_html_and_json(tiny_model_dir, dlan, tmp_path, capsys):
    assert main(["--base", str(tiny_model_dir), "--data", str(dlan), "--out", str(tmp_path / "lp"), "--max-samples", "3", "--plotlyjs", "cdn"]) == 0
    out = json.loads((tmp_path / "lp" / "logprob.json").read_text())
    html = (tmp_path / "lp" / "logprob.html").read_text()
    assert "plotly" in html.lower() and "reserved_tokens" in html and "verbalized" in html
    assert set(out["summary"]) == {"verbalized", "reserved_tokens"}
    for name, s in out["summary"].items():
        assert s["samples"] == 3 and np.isfinite(s["mean"]) and s["max"] < 0 and s["mean_tokens"] > 0
    codec = get_codec("reserved_tokens", out["reserved_tokens"])
    canonical = read_records(dlan)[0]["actions"]
    assert codec.decode(codec.encode(canonical)) == get_codec("verbalized").decode(canonical)
    assert '"summary"' in capsys.readouterr().out


def test_codec_file_is_used_when_given(tiny_model_dir, dlan, tmp_path):
    first = logprob_study(str(tiny_model_dir), dlan, max_samples=1, progress=False)
    (tmp_path / "action_codec.json").write_text(json.dumps({"name": "reserved_tokens", "digit_tokens": first["reserved_tokens"][::-1]}))
    again = logprob_study(str(tiny_model_dir), dlan, codec_file=tmp_path / "action_codec.json", max_samples=1, progress=False)
    assert again["reserved_tokens"] == first["reserved_tokens"][::-1]
    assert again["summary"]["verbalized"] == first["summary"]["verbalized"]


def test_bad_data_is_one_line_error(tiny_model_dir, tmp_path, capsys):
    assert main(["--base", str(tiny_model_dir), "--data", str(tmp_path / "none"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err


def test_read_reserved_codec_takes_a_logprob_json_and_names_a_wrong_file(tmp_path):
    from training.logprob import read_reserved_codec

    digits = [f"<unused{i}>" for i in range(10)]
    (tmp_path / "logprob.json").write_text(json.dumps({"reserved_tokens": digits}))
    assert list(read_reserved_codec(tmp_path / "logprob.json").digit_tokens) == digits
    (tmp_path / "other.json").write_text("{}")
    with pytest.raises(ValueError, match="other.json"):
        read_reserved_codec(tmp_path / "other.json")
    with pytest.raises(ValueError, match="does not hold a reserved_tokens codec"):
        read_reserved_codec(tmp_path)  # a folder without action_codec.json: the verbalized default
