"""The one loader: a Gemma 3 VLM (hub id or folder), optionally with a LoRA adapter and its action codec.

    from policy.model import load_model
    lm = load_model("google/gemma-3-12b-it", adapter="run/")      # or a local folder, e.g. tiny/
    model, processor = lm                                          # unpacks like a pair
    lm.codec.decode(text)                                          # the codec the adapter was trained with

Used by the policy's `hf` backend and by training (evaluation, the log-prob study). dtype and
device are chosen sensibly: bfloat16 on a GPU, float32 on the CPU. An adapter folder is the
PEFT format written by `training.finetune` (adapter_config.json + adapter_model.safetensors),
with `action_codec.json` naming the codec (absent = the default `verbalized`).
Every mistake a user can make (bad path, no weights offline, missing or mismatched adapter)
raises `ModelLoadError` (a ValueError) with one line naming the thing and the fix.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from policy.language import ActionCodec, get_codec

__all__ = ["LoadedModel", "ModelLoadError", "load_model", "load_codec", "save_codec", "CODEC_FILE", "default_device", "default_dtype"]

CODEC_FILE = "action_codec.json"
ADAPTER_CONFIG = "adapter_config.json"


class ModelLoadError(ValueError):
    """A base model or adapter that cannot be loaded; the message names it and the fix."""


@dataclass
class LoadedModel:
    """What `load_model` returns. Unpacks as `(model, processor)`."""

    model: Any
    processor: Any
    codec: ActionCodec
    base: str
    adapter: Path | None = None
    device: str = "cpu"
    dtype: Any = None
    info: dict = field(default_factory=dict)

    def __iter__(self) -> Iterator[Any]:
        return iter((self.model, self.processor))

    @property
    def tokenizer(self) -> Any:
        return getattr(self.processor, "tokenizer", self.processor)


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def default_dtype(device: str) -> Any:
    import torch

    return torch.bfloat16 if str(device).startswith("cuda") else torch.float32


def _resolve_dtype(dtype: Any, device: str) -> Any:
    import torch

    if dtype is None or dtype == "auto":
        return default_dtype(device)
    if isinstance(dtype, torch.dtype):
        return dtype
    names = {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16,
             "half": torch.float16, "fp32": torch.float32, "float32": torch.float32, "float": torch.float32}
    if str(dtype) not in names:
        raise ModelLoadError(f"unknown dtype {dtype!r}; use bfloat16, float16 or float32")
    return names[str(dtype)]


def _looks_like_path(s: str) -> bool:
    """A local folder (existing, or written like a path) rather than a hub id ('org/name')."""
    return Path(s).expanduser().exists() or s.startswith((".", "/", "~")) or s.count("/") > 1 or "\\" in s


def load_codec(adapter: str | Path | None) -> ActionCodec:
    """The action codec saved with an adapter (`action_codec.json`); `verbalized` without one."""
    if adapter is None:
        return get_codec("verbalized")
    path = Path(adapter) / CODEC_FILE
    if not path.exists():
        return get_codec("verbalized")
    try:
        spec = json.loads(path.read_text())
        return get_codec(spec.get("name", "verbalized"), spec.get("digit_tokens"))
    except (json.JSONDecodeError, ValueError, AttributeError) as e:
        raise ModelLoadError(f"{path}: not a valid action codec file ({e}); re-run training.finetune or delete it") from None


def save_codec(codec: ActionCodec, out_dir: str | Path, **extra: Any) -> Path:
    """Write `action_codec.json` next to an adapter."""
    spec: dict[str, Any] = {"name": codec.name}
    if hasattr(codec, "digit_tokens"):
        spec["digit_tokens"] = list(codec.digit_tokens)
    spec.update(extra)
    path = Path(out_dir) / CODEC_FILE
    path.write_text(json.dumps(spec, indent=2, ensure_ascii=False) + "\n")
    return path


def _check_adapter_folder(adapter: Path) -> dict:
    if not adapter.exists():
        raise ModelLoadError(f"adapter folder {adapter} does not exist; pass the --out folder of training.finetune")
    if not adapter.is_dir() or not (adapter / ADAPTER_CONFIG).exists():
        raise ModelLoadError(
            f"{adapter} is not a LoRA adapter (no {ADAPTER_CONFIG}); pass the --out folder of training.finetune"
        )
    try:
        return json.loads((adapter / ADAPTER_CONFIG).read_text())
    except json.JSONDecodeError as e:
        raise ModelLoadError(f"{adapter / ADAPTER_CONFIG} is not valid JSON ({e})") from None


def load_model(
    base: str | Path,
    adapter: str | Path | None = None,
    dtype: Any = None,
    device: str | None = None,
    merge: bool = False,
    attn_implementation: str | None = None,
) -> LoadedModel:
    """Load a Gemma 3 VLM + processor, optionally with a LoRA adapter (kept separate unless `merge`).

    `base`: hub id or local folder. `adapter`: a folder written by training.finetune.
    `dtype`: None = bfloat16 on GPU, float32 on CPU. `device`: None = cuda if available else cpu.
    With an adapter the model is a `peft.PeftModel`: `with lm.model.disable_adapter(): ...`
    answers as the base model with the same weights in memory.
    """
    from transformers import AutoModelForImageTextToText, AutoProcessor

    base_s = str(base)
    if _looks_like_path(base_s):
        bpath = Path(base_s).expanduser()
        if not bpath.exists():
            raise ModelLoadError(f"base model folder {bpath} does not exist; give a hub id or a folder (python -m training.tiny --out DIR builds one)")
        if not (bpath / "config.json").exists():
            raise ModelLoadError(f"{bpath} is not a model folder (no config.json)")
        base_s = str(bpath)
    device = device or default_device()
    torch_dtype = _resolve_dtype(dtype, device)
    adapter_path = Path(adapter).expanduser() if adapter is not None else None
    adapter_cfg = _check_adapter_folder(adapter_path) if adapter_path is not None else None

    kwargs: dict[str, Any] = {"dtype": torch_dtype}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    try:
        processor = AutoProcessor.from_pretrained(base_s)
        model = AutoModelForImageTextToText.from_pretrained(base_s, **kwargs)
    except OSError as e:
        offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false")
        hint = " (HF_HUB_OFFLINE is set: download it first or give a local folder)" if offline else ""
        raise ModelLoadError(f"cannot load base model {base_s!r}{hint}: {str(e).splitlines()[0]}") from None
    except ValueError as e:
        raise ModelLoadError(f"{base_s!r} is not a vision-language model AutoModelForImageTextToText can load: {str(e).splitlines()[0]}") from None

    codec = load_codec(adapter_path)
    info: dict[str, Any] = {}
    if adapter_path is not None:
        _check_codec_tokens(codec, processor, adapter_path, base_s)
        model = _attach_adapter(model, adapter_path, adapter_cfg or {}, base_s)
        info["adapter_base"] = (adapter_cfg or {}).get("base_model_name_or_path")
        if merge:
            model = model.merge_and_unload()
    model.to(device)
    model.eval()
    return LoadedModel(model=model, processor=processor, codec=codec, base=base_s, adapter=adapter_path,
                       device=str(device), dtype=torch_dtype, info=info)


def _check_codec_tokens(codec: ActionCodec, processor: Any, adapter: Path, base: str) -> None:
    digits = getattr(codec, "digit_tokens", None)
    if not digits:
        return
    tok = getattr(processor, "tokenizer", processor)
    for t in digits:
        if len(tok(t, add_special_tokens=False)["input_ids"]) != 1:
            raise ModelLoadError(
                f"adapter {adapter} spells digits with token {t!r}, which is not one token of base {base!r}; "
                "load it on the base model it was trained on"
            )


def _attach_adapter(model: Any, adapter: Path, cfg: dict, base: str) -> Any:
    from peft import PeftModel
    from safetensors import safe_open

    try:
        with warnings.catch_warnings():  # PEFT asks transformers' deprecated is_gradient_checkpointing: not the user's concern
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            peft_model = PeftModel.from_pretrained(model, str(adapter), is_trainable=False)
    except (ValueError, RuntimeError, KeyError) as e:
        raise ModelLoadError(
            f"adapter {adapter} does not fit base {base!r} (trained on {cfg.get('base_model_name_or_path')!r}): "
            f"{str(e).splitlines()[0][:300]}"
        ) from None
    # PEFT only warns about adapter weights it could not place; a mismatched base must fail loudly.
    weights = adapter / "adapter_model.safetensors"
    if weights.exists():
        params = {n: p for n, p in peft_model.named_parameters() if "lora_" in n}
        with safe_open(str(weights), "pt") as f:
            keys = list(f.keys())
        placed = 0
        for k in keys:
            name = k.replace(".weight", ".default.weight") if "lora_" in k else k
            hits = [n for n in params if n.endswith(name.split("base_model.model.", 1)[-1])]
            placed += bool(hits)
        if keys and placed < len(keys):
            raise ModelLoadError(
                f"adapter {adapter} does not fit base {base!r}: {len(keys) - placed} of its {len(keys)} weights name "
                "layers the base model does not have; load it on the base model it was trained on"
            )
    return peft_model
