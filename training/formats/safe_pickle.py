"""Read pickles without running code: the restricted unpickler for Bridge raw's `*.pkl` files.

A pickle is a program: it may name any importable callable (`os.system`, `builtins.eval`)
and the standard unpickler calls it. Bridge raw data *is* pickles, downloaded from
elsewhere, so they are read with an unpickler that resolves only the globals those files
need and refuses every other one before anything is called:

    containers and scalars   dict, list, tuple, set, str, bytes, int, float, bool, None
                             (built by pickle opcodes; no global is involved)
    numpy arrays and scalars numpy.ndarray, numpy.dtype, and the helpers numpy's own
                             pickles call to rebuild them (`_reconstruct`, `scalar`,
                             `_frombuffer`; under numpy 1's `numpy.core` and numpy 2's
                             `numpy._core` names)
    bytes in old protocols   _codecs.encode (how Python 3 writes bytes at protocol <= 2)
    set / frozenset / bytearray / complex   (`builtins`, or `__builtin__` as Python 2 and
                             protocols <= 2 spell it)

    >>> load_restricted(Path("traj0/obs_dict.pkl"))        # dicts of numpy arrays: fine
    {'state': array([[...]]), 'full_state': array([[...]])}
    >>> load_restricted(Path("evil/obs_dict.pkl"))         # a __reduce__ naming os.system
    ForbiddenGlobalError: posix.system

The allowed objects are looked up here, never imported by name, so a pickle cannot even
make us import a module. This is the one place in the project that reads a pickle.
"""

from __future__ import annotations

import builtins
import codecs
import pickle
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["ForbiddenGlobalError", "load_restricted", "ALLOWED_GLOBALS"]

_multiarray = np._core.multiarray  # numpy >= 2; numpy 1 pickles name it numpy.core.multiarray
_numeric = np._core.numeric

#: (module, name) as a pickle spells it -> the object it stands for. Nothing else resolves.
ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    **{(m, "_reconstruct"): _multiarray._reconstruct for m in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{(m, "scalar"): _multiarray.scalar for m in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{(m, "_frombuffer"): _numeric._frombuffer for m in ("numpy.core.numeric", "numpy._core.numeric")},
    ("_codecs", "encode"): codecs.encode,
    **{(m, n): getattr(builtins, n) for m in ("builtins", "__builtin__") for n in ("set", "frozenset", "bytearray", "complex")},
}


class ForbiddenGlobalError(pickle.UnpicklingError):
    """A pickle named a global outside `ALLOWED_GLOBALS`; `name` is 'module.name'."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(name)


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise ForbiddenGlobalError(f"{module}.{name}") from None

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("persistent ids are not allowed")


def load_restricted(path: Path) -> Any:
    """Unpickle `path` admitting only `ALLOWED_GLOBALS` (Python 2 pickles too: latin-1 strings).

    Raises ForbiddenGlobalError naming the global it refused, or whatever a
    damaged pickle raises (UnpicklingError, EOFError, ...); OSError if it cannot be read.
    """
    with open(path, "rb") as f:
        return _RestrictedUnpickler(f, encoding="latin1").load()
