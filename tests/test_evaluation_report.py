"""evaluation.report: the Markdown tables' shape (trials, VQA retained) and the figures, PNG rendered by Chromium."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from evaluation.policies import parse_policy
from evaluation.report import build_report, main
from evaluation.store import write_manifest, write_trial
from evaluation.suites import suite_rows
from evaluation.trials import plan
from evaluation.vqa_table import merge_vqa, retained, vqa_markdown


def _results(out, n=3):
    rows = suite_rows("fig5")
    specs = [parse_policy("scripted"), parse_policy("hf:model=tiny/,adapter=run/")]
    write_manifest(out, {"suite": "fig5", "robot": "sim", "seed_base": 1_000_000, "image_size": 64, "trials": n,
                         "rows": [{"key": r.key, "title": r.title} for r in rows], "policies": {s.label: s.as_dict() for s in specs}})
    for s, t in plan(rows, specs, n):
        ok = s.kind == "scripted" or t.index == 0
        write_trial(out, s.label, t, {"policy": s.label, "row": t.row, "task": t.task, "lang": t.lang, "index": t.index,
                                       "seed": t.seed, "success": ok, "retries": 0 if ok else 3, "rejected": 0 if ok else 2,
                                       "seconds": 2.0, "robot": "sim"})
    return rows


def test_vqa_table_has_the_papers_shape(tmp_path):
    merge_vqa(tmp_path, "base", {"mme": "mme_perception_score"}, {"mme": {"base": 1000.0, "run": 900.0}})
    data = merge_vqa(tmp_path, "base", {"toy": "exact match"}, {"toy": {"base": 50.0, "run": 55.0, "full": 0.0}})
    assert data["models"] == ["base", "run", "full"]
    assert retained(data) == {"mme": {"run": 90.0, "full": None}, "toy": {"run": 110.0, "full": 0.0}}
    lines = vqa_markdown(data).splitlines()
    assert lines[0] == "| benchmark | base | run | full | run: % of base | full: % of base |"
    assert lines[2] == "| mme | 1000.00 | 900.00 | — | 90.0% | — |"
    assert lines[-1] == "| **mean retained** |  |  |  | 100.0% | 0.0% |"
    with pytest.raises(ValueError, match="compares against base 'base'"):
        merge_vqa(tmp_path, "other", {}, {"x": {"other": 1.0}})


@pytest.mark.browser
def test_report_tables_and_png_figures(tmp_path):
    rows = _results(tmp_path)
    merge_vqa(tmp_path, "base", {"toy": "exact match, %"}, {"toy": {"base": 40.0, "run": 38.0}})
    path = build_report(tmp_path)
    md = path.read_text()
    trial_lines = [line for line in md.splitlines() if line.startswith("| ") and "% (" in line]
    assert len(trial_lines) == len(rows) * 2  # one per row and policy
    assert "| Pick Up-T (es, zh, hi) | hf-run | 33% (3/9) |" in md and "| Pick Up-A (semantic) | scripted | 100% (3/3) |" in md
    assert "| toy | 40.00 | 38.00 | 95.0% |" in md
    for name in ("trials", "vqa"):
        assert (tmp_path / "figures" / f"{name}.html").exists()
        img = np.asarray(Image.open(tmp_path / "figures" / f"{name}.png").convert("RGB"))
        assert img.shape[1] == 2000 and img.shape[0] > 900  # 1000 px wide at scale 2
        assert len(np.unique(img.reshape(-1, 3), axis=0)) > 50  # drawn, not blank
        assert f"figures/{name}.png" in md
    assert (tmp_path / "figures" / "plotly.min.js").exists()  # the HTML works offline


def test_report_of_an_empty_folder_is_one_clear_error(tmp_path, capsys):
    assert main([str(tmp_path)]) == 2
    assert "no trials" in capsys.readouterr().err
    assert main([str(tmp_path / "missing")]) == 2
    assert "not a folder" in capsys.readouterr().err
