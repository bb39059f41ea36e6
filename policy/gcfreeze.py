"""Keep long-lived objects out of the garbage collector's full passes, and give them back at exit.

With torch, transformers and gradio loaded, a full collection walks millions of objects
(~250 ms) and stalls camera and token streams, so the app, the policy CLI and the test
session freeze everything alive after start-up (`gc.freeze`). Frozen objects are never
collected, and interpreter shutdown collects only what is not frozen: objects in reference
cycles then outlive their extension modules, and nanobind (triton's bindings) reports each
as a leak — ~30 lines of "nanobind: leaked ... triton ..." on stderr at the end of every
command, which a person reads as a crash. Unfreezing at exit lets shutdown collect them.
"""

from __future__ import annotations

import atexit
import gc

__all__ = ["freeze_long_lived_objects"]


def freeze_long_lived_objects() -> None:
    """Collect once, freeze what is left for the rest of the process, and unfreeze it at exit."""
    gc.collect()
    gc.freeze()
    atexit.unregister(gc.unfreeze)  # once, however often this is called
    atexit.register(gc.unfreeze)
