"""`--policy` specs: which policy a column of the trials table is, written on the command line.

    scripted                                        the simulator's expert (the ceiling)
    hf:model=tiny/,adapter=run/                     transformers in-process, base + LoRA
    hf:model=tiny/,adapter=run/,no_adapter=1,label=base   the same weights answering as the base model
    openai:server=http://127.0.0.1:8000,model=vlm2vla     an OpenAI-compatible server (vLLM)

Keys: model, adapter, server, base_model, no_adapter (1/0), validator (sim, self, gemini,
none; default sim in the simulation, manual on the real arm), max_retries, label (the column
name; default from the kind and the adapter's folder name).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path

KINDS = ("scripted", "hf", "openai")
VALIDATORS = ("sim", "self", "gemini", "none", "manual")


class PolicySpecError(ValueError):
    pass


@dataclass(frozen=True)
class PolicySpec:
    kind: str  # scripted | hf | openai
    label: str  # column name in the tables; also its folder name under results/
    model: str | None = None  # hf: hub id or folder; openai: served model name
    adapter: str | None = None  # hf: LoRA folder
    server: str | None = None  # openai: base URL
    base_model: str | None = None  # openai: the base model's served name (with no_adapter)
    no_adapter: bool = False  # answer as the base model
    validator: str | None = None  # None: sim in the simulation, manual on the real arm
    max_retries: int = 3

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise PolicySpecError(f"--policy {self.kind!r}: unknown kind; choose {', '.join(KINDS)} (e.g. hf:model=tiny/,adapter=run/)")
        if not re.fullmatch(r"[A-Za-z0-9_.+-]+", self.label):
            raise PolicySpecError(f"--policy label {self.label!r}: use letters, digits and _ . + - (it names a folder)")
        if self.kind == "hf" and not self.model:
            raise PolicySpecError("--policy hf needs model=PATH_OR_HUB_ID, e.g. hf:model=tiny/,adapter=run/")
        if self.kind == "openai" and not self.server:
            raise PolicySpecError("--policy openai needs server=URL, e.g. openai:server=http://127.0.0.1:8000,model=vlm2vla")
        if self.validator is not None and self.validator not in VALIDATORS:
            raise PolicySpecError(f"--policy validator={self.validator}: choose one of {', '.join(VALIDATORS)}")
        if self.max_retries < 0:
            raise PolicySpecError("--policy max_retries must be >= 0")

    def as_dict(self) -> dict:
        return asdict(self)


_KEYS = {"model", "adapter", "server", "base_model", "no_adapter", "validator", "max_retries", "label"}


def parse_policy(text: str) -> PolicySpec:
    """'KIND[:key=value,...]' -> PolicySpec (see the module docstring)."""
    kind, _, rest = text.partition(":")
    kind = kind.strip()
    kv: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = part.partition("=")
        if not eq or key not in _KEYS:
            raise PolicySpecError(f"--policy {text!r}: expected key=value with key in {', '.join(sorted(_KEYS))}, found {part!r}")
        kv[key] = value
    no_adapter = kv.pop("no_adapter", "0").lower() in ("1", "true", "yes")
    try:
        max_retries = int(kv.pop("max_retries", "3"))
    except ValueError:
        raise PolicySpecError(f"--policy {text!r}: max_retries must be a whole number") from None
    label = kv.pop("label", None) or default_label(kind, kv.get("model"), kv.get("adapter"), no_adapter)
    return PolicySpec(kind=kind, label=label, no_adapter=no_adapter, max_retries=max_retries, **kv)


def default_label(kind: str, model: str | None, adapter: str | None, no_adapter: bool) -> str:
    if kind == "scripted":
        return "scripted"
    name = Path(adapter).name if adapter and not no_adapter else (Path(model).name if model else kind)
    label = f"{kind}-{name}" + ("-base" if no_adapter else "")
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", label)
