"""The state of one episode as the page shows it, built from the closed loop's events.

`EpisodeView.apply(event)` folds each `policy.events` event into plain fields the
panels render (subtask statuses, the streaming plan/action text, executed commands,
verdicts, the end-effector path). It is UI-independent and thread-safe: the loop's
thread applies events while page handlers read snapshots. The episode's log is the
loop's own (`policy.episode_log`, in `log_dir`); `History` offers it zipped as a download.
"""

from __future__ import annotations

import dataclasses
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from app.limits import LOG_FILE, MAX_EPISODES, MAX_LOG_MB, MAX_OFFERED_LOGS
from policy import events as ev

PENDING, RUNNING, DONE, RETRYING, FAILED = "pending", "running", "done", "retrying", "failed"


@dataclass
class SubtaskView:
    name: str
    status: str = PENDING
    attempts: int = 0
    plan: str = ""  # streamed, latest attempt
    actions: str = ""  # streamed, latest attempt
    error: str = ""  # last rejected block's parse error


@dataclass
class CommandView:
    index: int  # subtask
    step: int
    requested: tuple[float, float, float]
    executed: tuple[float, float, float]
    target: tuple[float, float, float]
    ee_pos: tuple[float, float, float]
    gripper: float
    clamps: tuple[str, ...]
    gripper_cmd: float | None = None


@dataclass
class VerdictView:
    index: int
    subtask: str
    done: bool
    reason: str
    validator: str
    latency_s: float
    text: str = ""  # streamed validator text, if any


@dataclass
class EpisodeView:
    instruction: str = ""
    policy: str = ""
    validator: str = ""
    seed: int | None = None
    driver: str = ""
    started_at: float = field(default_factory=time.time)
    subtasks_text: str = ""  # streamed stage-1 text (the current try's)
    subtasks_error: str = ""  # why the last subtask list did not parse (the model is asked again)
    subtasks: list[SubtaskView] = field(default_factory=list)
    current: int = -1
    commands: list[CommandView] = field(default_factory=list)
    verdicts: list[VerdictView] = field(default_factory=list)
    validator_stream: str = ""
    start_pos: tuple[float, float, float] | None = None
    awaiting: str | None = None  # "execute" | "verdict" while the loop waits for a person
    proposed: ev.ActionsProposed | None = None
    finished: bool = False
    success: bool | None = None
    reason: str = ""
    retries: int = 0
    duration_s: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    version: int = 0
    log_dir: str | None = None  # the loop's episode log folder (policy.episode_log), from EpisodeDone
    notice: str = ""  # something the page must say beside the episode (e.g. its log could not be written)
    token_times: list[tuple[float, int]] = field(default_factory=list, repr=False)  # (wall time, version)

    def __post_init__(self) -> None:
        self._mutex = threading.RLock()

    # ------------------------------------------------------------------ folding events
    def apply(self, e: ev.Event) -> None:
        with self._mutex:
            self._apply(e)
            self.version += 1

    def _apply(self, e: ev.Event) -> None:
        if not isinstance(e, ev.AwaitingUser):
            self.awaiting = None  # a wait lasts until the loop's next event
        if isinstance(e, ev.EpisodeStarted):
            self.instruction, self.policy, self.validator, self.seed = e.instruction, e.policy, e.validator, e.seed
        elif isinstance(e, ev.Tokens):
            if e.stage == "subtasks":
                self.subtasks_text += e.text
            elif e.stage in ("plan", "actions") and 0 <= e.index < len(self.subtasks):
                st = self.subtasks[e.index]
                if e.stage == "plan":
                    st.plan += e.text
                else:
                    st.actions += e.text
            elif e.stage == "validator":
                self.validator_stream += e.text
        elif isinstance(e, ev.SubtasksRejected):
            self.subtasks_error, self.subtasks_text = e.error, ""  # the next try streams afresh
        elif isinstance(e, ev.SubtasksPlanned):
            self.subtasks = [SubtaskView(s) for s in e.subtasks]
            self.subtasks_error = ""
            if not self.subtasks_text:
                self.subtasks_text = e.text
        elif isinstance(e, ev.SubtaskStarted):
            self._ensure(e.index, e.subtask)
            st = self.subtasks[e.index]
            st.status, st.attempts, st.plan, st.actions, st.error = RUNNING, e.attempt, "", "", ""
            self.current = e.index
            self.validator_stream = ""
            self.proposed = None
        elif isinstance(e, ev.ActionsProposed):
            st = self._ensure(e.index)
            # The streamed text may have been split differently; the parsed result is authoritative.
            st.plan, st.actions = e.plan, e.actions
            self.proposed = e
        elif isinstance(e, ev.ActionsRejected):
            st = self._ensure(e.index)
            st.error = e.error
            if not st.actions:
                st.actions = e.text
        elif isinstance(e, ev.StepExecuted):
            if self.start_pos is None:
                start = tuple(float(a - b) for a, b in zip(e.target, e.executed))
                self.start_pos = start  # where the arm was before the first step
            self.commands.append(
                CommandView(e.index, e.step, e.requested, e.executed, e.target, e.ee_pos, e.gripper, tuple(e.clamps))
            )
            self.awaiting = None
        elif isinstance(e, ev.VerdictGiven):
            st = self._ensure(e.index)
            st.status = DONE if e.done else RETRYING
            self.verdicts.append(
                VerdictView(e.index, st.name, e.done, e.reason, e.validator, e.latency_s, self.validator_stream)
            )
            self.awaiting = None
        elif isinstance(e, ev.Retry):
            st = self._ensure(e.index)
            st.status = RETRYING
            self.retries = max(self.retries, 0) + 1
        elif isinstance(e, ev.AwaitingUser):
            self.awaiting = e.what
        elif isinstance(e, ev.EpisodeDone):
            self.finished, self.success, self.reason = True, e.success, e.reason
            self.retries = e.retries
            self.timings = dict(e.timings)
            self.duration_s = e.t
            self.log_dir = e.log_dir
            self.awaiting = None
            for st in self.subtasks:
                if st.status in (RUNNING, RETRYING):
                    st.status = FAILED if not e.success else DONE
        if isinstance(e, ev.Tokens):
            self.token_times.append((time.time(), self.version + 1))
            del self.token_times[:-20000]

    def _ensure(self, index: int, name: str = "") -> SubtaskView:
        while len(self.subtasks) <= index:
            self.subtasks.append(SubtaskView(name or f"subtask {len(self.subtasks) + 1}"))
        return self.subtasks[index]

    def failure(self, reason: str) -> ev.EpisodeDone:
        """The EpisodeDone that closes this view honestly when the loop ended without one (an exception)."""
        return ev.EpisodeDone(t=time.time() - self.started_at, success=False, reason=reason, retries=self.retries)

    def fail(self, reason: str) -> None:
        """The loop died without an EpisodeDone (an exception): close the view honestly."""
        with self._mutex:
            if not self.finished:
                self.apply(self.failure(reason))

    # ------------------------------------------------------------------ reading
    def snapshot(self) -> "EpisodeView":
        """A consistent deep copy for rendering while the loop goes on."""
        with self._mutex:
            copy = dataclasses.replace(
                self,
                subtasks=[dataclasses.replace(s) for s in self.subtasks],
                commands=list(self.commands),
                verdicts=list(self.verdicts),
                token_times=list(self.token_times),
                timings=dict(self.timings),
            )
        return copy

    @property
    def elapsed_s(self) -> float:
        return self.duration_s if self.finished else time.time() - self.started_at

    def path(self) -> list[tuple[tuple[float, float, float], int]]:
        """The executed end-effector path as (position, subtask index), starting where the arm began."""
        pts: list[tuple[tuple[float, float, float], int]] = []
        if self.start_pos is not None and self.commands:
            pts.append((self.start_pos, self.commands[0].index))
        pts += [(c.ee_pos, c.index) for c in self.commands]
        return pts


@dataclass
class HistoryRow:
    number: int
    instruction: str
    success: bool | None
    retries: int
    duration_s: float
    reason: str
    log_dir: Path | None  # the loop's episode log folder (None: the episode ended before the loop logged)
    log_zip: Path | None  # the same folder zipped, for the download (None once deleted to stay within the caps)


class History:
    """Finished episodes of this demo run, newest first, each with its episode log (policy.episode_log).

    Bounded, oldest first (the figures are app.limits'): at most `max_rows` rows in memory; in the log
    folder at most `max_logs` episode logs taking at most `max_bytes` (each log folder with its zip;
    logs of earlier runs in the same folder count too; the newest is always kept). A row whose log is
    deleted keeps its line and loses its download. A log that cannot be written or zipped never costs
    the episode its row: the row says what failed."""

    def __init__(self, folder: Path, max_rows: int = MAX_EPISODES, max_logs: int = MAX_EPISODES,
                 max_bytes: int = int(MAX_LOG_MB * 2**20)) -> None:
        self.folder = folder
        self.max_rows, self.max_logs, self.max_bytes = max_rows, max_logs, max_bytes
        self.rows: list[HistoryRow] = []
        self.count = 0  # episodes added so far (row numbers go on when old rows are dropped)
        self.dropped = 0  # rows dropped to stay within max_rows
        self.deleted = 0  # episode logs deleted to stay within the caps
        self._mutex = threading.Lock()

    def add(self, view: EpisodeView) -> HistoryRow:
        """The finished episode's row (its log zipped); what the page was told beside it (`view.notice`,
        e.g. that its log could not be written) goes into the row's result too."""
        with self._mutex:
            self.count += 1
            log_dir = Path(view.log_dir) if view.log_dir else None
            log_zip, said = None, [view.notice] if view.notice else []
            if log_dir is not None:
                try:
                    log_zip = Path(shutil.make_archive(str(log_dir), "zip", root_dir=log_dir))
                except OSError as e:
                    said.append(f"log not saved: its log could not be zipped: {type(e).__name__}: {e}")
            reason = " · ".join([view.reason, *said])
            row = HistoryRow(self.count, view.instruction, view.success, view.retries, view.duration_s, reason,
                             log_dir, log_zip)
            self.rows.insert(0, row)
            self.dropped += max(0, len(self.rows) - self.max_rows)
            del self.rows[self.max_rows:]
            self._prune()
            return row

    def _prune(self) -> None:
        """Delete the oldest episode logs (folder and zip) beyond max_logs or max_bytes."""
        try:  # log folders are named <date>-<time>_<instruction>: by name is oldest first
            logs = sorted(d for d in self.folder.iterdir() if d.is_dir() and (d / LOG_FILE).is_file())
        except OSError:
            return
        size = {d: _bytes(d) + _bytes(d.with_suffix(".zip")) for d in logs}
        total = sum(size.values())
        while len(logs) > 1 and (len(logs) > self.max_logs or total > self.max_bytes):
            old = logs.pop(0)
            total -= size[old]
            shutil.rmtree(old, ignore_errors=True)
            old.with_suffix(".zip").unlink(missing_ok=True)
            self.deleted += 1
            for r in self.rows:
                if r.log_dir == old:
                    r.log_dir = r.log_zip = None

    def offered(self, n: int = MAX_OFFERED_LOGS) -> list[str]:
        """The newest `n` episode logs' zips, for the download list."""
        return [str(r.log_zip) for r in self.rows if r.log_zip is not None and r.log_zip.is_file()][:n]

    def note(self) -> str:
        """Once rows or logs were dropped: what the History keeps, for the History tab ('' before)."""
        if not (self.dropped or self.deleted):
            return ""
        mb = self.max_bytes / 2**20
        return (f"kept: the newest {self.max_rows} episodes here, the newest {self.max_logs} logs up to {mb:.0f} MB "
                f"in {self.folder}, oldest deleted first ({self.dropped} older rows and {self.deleted} older logs so far); "
                f"the newest {MAX_OFFERED_LOGS} logs can be downloaded")


def _bytes(path: Path) -> int:
    """Size of a file or of everything under a folder, bytes (0 when it is gone)."""
    try:
        if path.is_file():
            return path.stat().st_size
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    except OSError:
        return 0
