"""Pick an offscreen OpenGL backend for MuJoCo before `mujoco` is imported.

MuJoCo reads `MUJOCO_GL` once, when the package is first imported, so the choice
must be made here, first. If the user set `MUJOCO_GL` we respect it. Otherwise we
try EGL, then OSMesa, each in a short-lived subprocess (a failing GL driver can
abort the process, so probing in-process is not safe), and export the first that
renders. The result is cached in the environment, so child processes inherit it.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

_CANDIDATES = ("egl", "osmesa")

_PROBE = """
import mujoco
m = mujoco.MjModel.from_xml_string('<mujoco><worldbody><geom type="sphere" size=".1"/></worldbody></mujoco>')
ctx = mujoco.GLContext(16, 16)
ctx.make_current()
ctx.free()
print("ok")
"""


class RenderBackendError(RuntimeError):
    """Neither EGL nor OSMesa can render offscreen on this machine."""


def _probe(backend: str) -> str | None:
    env = dict(os.environ, MUJOCO_GL=backend, PYOPENGL_PLATFORM=backend)
    try:
        out = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        return str(e)
    if out.returncode == 0 and "ok" in out.stdout:
        return None
    lines = (out.stderr or out.stdout).strip().splitlines()
    return lines[-1] if lines else f"exit code {out.returncode}"


def select_backend() -> str:
    """Return the GL backend MuJoCo will use, choosing and exporting one if none is set."""
    if "mujoco" in sys.modules:
        # Too late to choose: report what the already-imported mujoco picked.
        return os.environ.get("MUJOCO_GL", "glfw")
    chosen = os.environ.get("MUJOCO_GL")
    if chosen:
        os.environ.setdefault("PYOPENGL_PLATFORM", chosen)
        return chosen
    errors = []
    for backend in _CANDIDATES:
        err = _probe(backend)
        if err is None:
            os.environ["MUJOCO_GL"] = backend
            os.environ.setdefault("PYOPENGL_PLATFORM", backend)
            return backend
        errors.append(f"{backend}: {err}")
    # Leave rendering unset: physics still works; observe() raises RenderBackendError.
    os.environ["MUJOCO_GL"] = "disabled"
    global _FAILURE
    _FAILURE = (
        "no offscreen OpenGL backend works (" + "; ".join(errors) + "). Install one: "
        "`sudo apt-get install libegl1 libgl1` (EGL) or `sudo apt-get install libosmesa6` (OSMesa), "
        "or set MUJOCO_GL to a backend that works"
    )
    return "disabled"


_FAILURE = ""


def render_failure() -> str:
    """Why rendering is unavailable ('' when a backend was found)."""
    return _FAILURE


def _load_triton_first() -> None:
    """Load triton's LLVM before Mesa's, or the process segfaults later.

    Mesa's software rasterizer (llvmpipe, under both EGL and OSMesa) loads the system
    libLLVM when the first GL context is made. triton (which xgrammar requires and
    transformers imports when present) carries its own LLVM; loaded after Mesa's, its
    static initializers register into Mesa's LLVM option registry and crash
    (llvm::cl::Option::addArgument, seen with libLLVM-15). Loaded first, both work.
    Doing it here, where rendering is set up, means no caller has to remember the order.
    """
    if importlib.util.find_spec("triton") is not None:
        import triton  # noqa: F401


BACKEND = select_backend()
if BACKEND in ("egl", "osmesa"):
    _load_triton_first()
