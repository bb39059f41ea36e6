"""One driver at a time: the robot lock shared by every browser tab and API client.

A session (Gradio's `session_hash`, one per tab or gradio_client `Client`) takes the
lock when it starts an episode or resets the scene and gives it back on Stop, at the
episode's end, or when its tab closes. Everyone else watches.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

BUSY_MESSAGE = "robot busy — watching"


@dataclass(frozen=True)
class Holder:
    session: str
    since: float  # time.time() when taken
    what: str  # "episode", "reset", ...


class DriverLock:
    """A non-blocking, re-entrant-per-session lock with a holder you can show.

    A holder whose episode cannot end (the arm's driver hangs inside a call after Stop) is
    marked `stuck` with the reason: everyone is then told that, not "busy", until the call
    returns and the episode's own end releases the lock."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._holder: Holder | None = None
        self.stuck = ""  # why the holder cannot let go, while it cannot

    def acquire(self, session: str, what: str = "episode") -> bool:
        """Take the lock for `session`; True if it now holds it (also when it already did)."""
        if not session:
            raise ValueError("a driver needs a session id")
        with self._mutex:
            if self._holder is None or self._holder.session == session:
                self._holder = Holder(session, time.time(), what)
                return True
            return False

    def release(self, session: str) -> bool:
        """Give the lock back if `session` holds it; True if it was released."""
        with self._mutex:
            if self._holder is not None and self._holder.session == session:
                self._holder = None
                self.stuck = ""
                return True
            return False

    def mark_stuck(self, reason: str) -> None:
        """The holder cannot release the robot (see the class docstring); `reason` says why."""
        with self._mutex:
            if self._holder is not None:
                self.stuck = reason

    def busy_message(self) -> str:
        """What someone who may not drive now is told."""
        stuck = self.stuck
        return f"robot stuck — {stuck}" if stuck else BUSY_MESSAGE

    @property
    def holder(self) -> Holder | None:
        return self._holder

    def held_by(self, session: str) -> bool:
        h = self._holder
        return h is not None and h.session == session

    def busy_for(self, session: str) -> bool:
        """True when someone other than `session` drives."""
        h = self._holder
        return h is not None and h.session != session
