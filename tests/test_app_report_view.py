"""The Evaluation tab's reading of a report folder (app.report_view): a real report's tables,
figures and stamp; no report; a damaged or partial one — each a line naming the file, never a traceback."""

from __future__ import annotations

import base64
import shutil
from pathlib import Path

import pytest

from app.config import from_args, parser
from app.report_view import default_folder, figures_html, make_commands, read_report, report_panels
from tests.app_helpers import make_report

FIGURE = Path(__file__).resolve().parents[1] / "assets" / "eval_trials.png"  # a figure evaluation.report made
DEFAULT_COMMANDS = ("`python -m evaluation.trials --suite fig5 --policy scripted --trials 5` "
                    "then `python -m evaluation.report`")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """A report of synthetic trials, its PNG copied in (rendering one needs Chromium: test_evaluation_report)."""
    out = tmp_path_factory.mktemp("results")
    make_report(out, png=False)
    shutil.copy(FIGURE, out / "figures" / "trials.png")
    return out


def _copy(report: Path, tmp_path: Path) -> Path:
    shutil.copytree(report, tmp_path / "r")
    return tmp_path / "r"


def test_a_report_shows_its_tables_figures_and_when_it_was_written(report):
    view = read_report(report)
    assert view.source.startswith(f"Report `{report / 'report.md'}` — written 20") and "UTC by `python -m evaluation.report`" in view.source
    assert "| Pick Up-A (semantic) | scripted | 100% (2/2) | 34–100% |" in view.tables
    assert "## Trials (Fig. 5)" in view.tables
    assert "# Evaluation report" not in view.tables and "![" not in view.tables and "written" not in view.tables
    assert [(f.caption, f.name) for f in view.figures] == [("success by task", "figures/trials.png")] and not view.problems
    html = figures_html(view)
    assert html.count("<img ") == 1 and 'alt="success by task"' in html
    assert base64.b64decode(html.split("base64,")[1].split('"')[0]) == FIGURE.read_bytes()  # the PNG as written
    source, tables, figures = report_panels(str(report))
    assert (source, tables, figures) == (view.source, view.tables, html)


def test_no_report_says_in_one_line_how_to_make_one(tmp_path):
    assert make_commands(Path("results")) == DEFAULT_COMMANDS
    for folder, why in [(tmp_path / "none", "does not exist"), (tmp_path, "report.md does not exist")]:
        view = read_report(folder)
        assert why in view.source and "\n" not in view.source and not view.tables and not view.figures
        assert f"--trials 5 --out {folder}` then `python -m evaluation.report {folder}`" in view.source
    (tmp_path / "file").write_text("x")
    assert "is not a folder" in read_report(tmp_path / "file").source


@pytest.mark.parametrize("damage, says", [
    (lambda r: (r / "report.md").write_bytes(b"# Evaluation report\n\xff\xfe| a |"), "report.md: not UTF-8 text (byte 20)"),
    (lambda r: (r / "report.md").write_text("# Evaluation report\n\n*cut"), "report.md has no table: it is cut short"),
    (lambda r: ((r / "report.md").unlink(), (r / "report.md").mkdir()), "report.md: not a file"),
    (lambda r: (r / "report.md").write_text("x" * 1_000_001), "report.md: 1,000,001 bytes, more than a report"),
])
def test_a_damaged_report_md_is_one_line_naming_it(report, tmp_path, damage, says):
    r = _copy(report, tmp_path)
    damage(r)
    source, tables, figures = report_panels(r)
    assert f"{r}/{says}" in source and ("make the report again" in source or "make it again" in source)
    assert "\n" not in source and not tables and not figures


@pytest.mark.parametrize("damage, says", [
    (lambda f: f.unlink(), "figures/trials.png is missing: run python -m evaluation.report again"),
    (lambda f: f.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40), "figures/trials.png is not a readable PNG"),
    (lambda f: f.write_bytes(FIGURE.read_bytes()[:5000]), "figures/trials.png is not a readable PNG"),
    (lambda f: f.write_bytes(_jpeg()), "figures/trials.png is a JPEG image, not a PNG"),
])
def test_a_missing_or_damaged_figure_keeps_the_tables_and_names_the_file(report, tmp_path, damage, says):
    r = _copy(report, tmp_path)
    damage(r / "figures" / "trials.png")
    view = read_report(r)
    assert "| Pick Up | scripted |" in view.tables and not view.figures
    assert len(view.problems) == 1 and f"{r}/{says}" in view.problems[0]
    source, _, figures = report_panels(r)
    assert source.splitlines()[-1] == f"⚠ {view.problems[0]}" and figures == ""


def test_a_figure_outside_the_folder_is_not_shown(report, tmp_path):
    r = _copy(report, tmp_path)
    shutil.copy(FIGURE, tmp_path / "elsewhere.png")
    md = r / "report.md"
    md.write_text(md.read_text().replace("(figures/trials.png)", "(../elsewhere.png)"))
    view = read_report(r)
    assert not view.figures and view.problems == (f"{md} links ../elsewhere.png, outside {r}/: not shown",)


def test_the_report_flag():
    assert from_args([], env={}).report == default_folder()  # results/ or the shipped report: see the test below
    assert from_args(["--report", "elsewhere/"], env={}).report == "elsewhere/"
    assert "--report DIR" in parser().format_help()


def _jpeg() -> bytes:
    from io import BytesIO

    from PIL import Image

    buf = BytesIO()
    Image.new("RGB", (8, 8)).save(buf, "JPEG")
    return buf.getvalue()


def test_the_default_folder_is_yours_once_it_has_a_report_and_the_shipped_one_before(tmp_path):
    results, shipped = tmp_path / "results", tmp_path / "shipped"
    assert default_folder(results, shipped) == str(results)  # neither: the folder the commands write to
    shipped.mkdir()
    (shipped / "report.md").write_text("| a |\n")
    assert default_folder(results, shipped) == str(shipped)
    results.mkdir()
    (results / "report.md").write_text("| b |\n")
    assert default_folder(results, shipped) == str(results)
