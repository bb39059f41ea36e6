"""The Evaluation tab's content: the latest report of `python -m evaluation.report`, read from its folder.

The app never imports `evaluation` (ARCHITECTURE.md: nothing imports it); it reads what the report
command wrote: `report.md` (a stamp line, Markdown tables, image links) and the PNGs it links,
`figures/{trials,vqa}.png`. Everything a visitor sees is read-only.

A folder without a report, or a report that is cut short or damaged, gives one line that names
the file and how to make the report again; nothing here raises for what is in the folder.
"""

from __future__ import annotations

import base64
import html
import re
import shlex
from dataclasses import dataclass
from datetime import datetime, timezone
from io import BytesIO
from pathlib import Path

DEFAULT_FOLDER = "results"  # where python -m evaluation.trials and evaluation.report write by default
SHIPPED_FOLDER = Path(__file__).resolve().parents[1] / "assets" / "micro" / "report"  # the demo model's own report
MAX_REPORT_BYTES = 1_000_000  # report.md is a few KB; anything this large is not one
MAX_FIGURE_BYTES = 10_000_000  # each PNG goes into the page (base64); the report's are ~100-300 KB

_IMAGE_LINK = re.compile(r"!\[(?P<alt>[^\]]*)\]\((?P<src>[^)\s]+)\)")
# "*results — written 2025-01-31 12:00 UTC by `python -m evaluation.report`*" (evaluation/report.py)
_STAMP = re.compile(r"^\*(?P<source>.+?) — written (?P<when>.+?)\s+by (?P<by>.+)\*$")


@dataclass(frozen=True)
class Figure:
    caption: str  # the alt text report.md gives the image
    name: str  # its path inside the report folder, e.g. figures/trials.png
    png: bytes


@dataclass(frozen=True)
class ReportView:
    """What the tab shows. `source` is one line: which report and when it was written, or why none is shown."""

    source: str
    tables: str = ""  # report.md's Markdown without its title, stamp line and image links
    figures: tuple[Figure, ...] = ()
    problems: tuple[str, ...] = ()  # one line each, naming the file (a missing or unreadable figure)


def default_folder(results: Path = Path(DEFAULT_FOLDER), shipped: Path = SHIPPED_FOLDER) -> str:
    """`results/` once a report is there (yours); until then the report that ships with the demo's
    micro model, so that a first visitor sees the numbers of the model driving the arm."""
    if (results / "report.md").exists() or not (shipped / "report.md").exists():
        return str(results)
    return str(shipped)


def make_commands(folder: Path) -> str:
    """The two commands that make a report in `folder` (the short form for the default folder)."""
    if folder == Path(DEFAULT_FOLDER):
        return "`python -m evaluation.trials --suite fig5 --policy scripted --trials 5` then `python -m evaluation.report`"
    q = shlex.quote(str(folder))
    return (f"`python -m evaluation.trials --suite fig5 --policy scripted --trials 5 --out {q}` "
            f"then `python -m evaluation.report {q}`")


def read_report(folder: Path | str) -> ReportView:
    """Read `folder/report.md` and the figures it links; never raises for the folder's content."""
    folder = Path(folder)
    md_path = folder / "report.md"
    if not md_path.exists():
        where = (f"{folder}/ does not exist" if not folder.exists() else
                 f"{folder} is not a folder" if not folder.is_dir() else f"{md_path} does not exist")
        return ReportView(f"No evaluation report yet ({where}). Make one: {make_commands(folder)}.")
    text, problem = _read_text(md_path)
    if problem:
        return ReportView(f"{md_path}: {problem} — make the report again: {make_commands(folder)}.")
    lines = text.splitlines()
    if not any(line.startswith("|") for line in lines):
        return ReportView(f"{md_path} has no table: it is cut short or not written by python -m evaluation.report — "
                          f"make it again: {make_commands(folder)}.")
    stamp = next((m for m in map(_STAMP.match, lines) if m), None)
    figures, problems = [], []
    for m in (m for line in lines for m in _IMAGE_LINK.finditer(line)):
        fig, problem = _read_figure(folder, m["src"], m["alt"])
        if fig:
            figures.append(fig)
        else:
            problems.append(problem)
    body = [line for line in lines if not line.startswith("# ") and not _STAMP.match(line)]
    tables = _IMAGE_LINK.sub("", "\n".join(body)).strip()
    return ReportView(_source_line(md_path, stamp), tables, tuple(figures), tuple(problems))


def _read_text(path: Path) -> tuple[str, str]:
    """(text, "") or ("", what is wrong with the file)."""
    try:
        if not path.is_file():
            return "", "not a file"
        if path.stat().st_size > MAX_REPORT_BYTES:
            return "", f"{path.stat().st_size:,} bytes, more than a report ({MAX_REPORT_BYTES:,} at most are read)"
        return path.read_text(encoding="utf-8"), ""
    except UnicodeDecodeError as e:
        return "", f"not UTF-8 text (byte {e.start})"
    except OSError as e:
        return "", f"cannot be read ({e.strerror or type(e).__name__})"


def _read_figure(folder: Path, src: str, caption: str) -> tuple[Figure | None, str]:
    """The PNG report.md links, checked to be one (Pillow reads its header and chunk checksums,
    without decoding the pixels); or None and the line saying what is wrong with it."""
    from PIL import Image

    path = (folder / src).resolve()
    if not path.is_relative_to(folder.resolve()):  # the tab shows the report's own figures only
        return None, f"{folder / 'report.md'} links {src}, outside {folder}/: not shown"
    shown = folder / src
    again = "run python -m evaluation.report again (it renders PNGs with Chromium; --no-png writes none)"
    try:
        size = path.stat().st_size
        if size > MAX_FIGURE_BYTES:
            return None, f"{shown}: {size:,} bytes, more than a figure ({MAX_FIGURE_BYTES:,} at most are shown)"
        data = path.read_bytes()
        with Image.open(BytesIO(data)) as im:
            if im.format != "PNG":
                return None, f"{shown} is a {im.format} image, not a PNG: {again}"
            im.verify()
    except FileNotFoundError:
        return None, f"{shown} is missing: {again}"
    except Exception as e:  # Pillow raises many kinds (SyntaxError, struct.error, ...) for a damaged file
        return None, f"{shown} is not a readable PNG ({type(e).__name__}): {again}"
    return Figure(caption, src, data), ""


def _source_line(md_path: Path, stamp: re.Match | None) -> str:
    if stamp:
        return f"Report `{md_path}` — written {stamp['when']} by {stamp['by']}."
    try:
        when = datetime.fromtimestamp(md_path.stat().st_mtime, timezone.utc)
    except OSError:
        return f"Report `{md_path}`."
    return f"Report `{md_path}` — file modified {when:%Y-%m-%d %H:%M} UTC."


# ---------------------------------------------------------------------------- the tab's panels


def source_markdown(view: ReportView) -> str:
    """The source line, then one line per problem."""
    return "\n\n".join([view.source, *(f"⚠ {p}" for p in view.problems)])


def figures_html(view: ReportView) -> str:
    """The figures as <img> with the PNG inlined: Gradio serves files only from the working folder,
    the temp folder or allowed_paths (and the report folder must not be served whole, as the
    log folder is), and handing it decoded images costs a PNG re-encode of 1-1.4 s per figure per
    view on two busy cores (measured); inlining the bytes costs a base64 pass."""
    return "".join(
        f'<figure class="report-figure"><img src="data:image/png;base64,{base64.b64encode(f.png).decode()}" '
        f'alt="{html.escape(f.caption)}" style="max-width:100%;height:auto">'
        f"<figcaption>{html.escape(f.caption)} · {html.escape(f.name)}</figcaption></figure>"
        for f in view.figures
    )


def report_panels(folder: Path | str) -> tuple[str, str, str]:
    """(source line, tables, figures) for the tab's three components, re-read from the folder."""
    view = read_report(folder)
    return source_markdown(view), view.tables, figures_html(view)
