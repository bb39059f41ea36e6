"""Fixtures shared by the policy tests: the tiny model as an hf backend, a LoRA adapter, the chat server.

tests/conftest.py registers this module as a plugin: a test requests the fixtures by name, without importing
them; `random_image` is a plain helper to import.
"""

from __future__ import annotations

import numpy as np
import pytest

LORA_TARGETS = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"


@pytest.fixture(scope="session")
def tiny_adapter_dir(tiny_model_dir, tmp_path_factory):
    """A LoRA adapter on the tiny model (PEFT format), random B != 0 so it changes the outputs."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText

    torch.manual_seed(0)
    model = AutoModelForImageTextToText.from_pretrained(str(tiny_model_dir), dtype=torch.float32)
    cfg = LoraConfig(r=4, lora_alpha=16, target_modules=LORA_TARGETS, init_lora_weights=False)
    peft_model = get_peft_model(model, cfg)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, 0.5)
    out = tmp_path_factory.mktemp("adapter") / "lora"
    peft_model.save_pretrained(str(out))
    return out


@pytest.fixture(scope="module")
def tiny_backend(tiny_model_dir, tiny_adapter_dir, one_thread):
    """The tiny model + adapter through the real loader (policy.model.load_model)."""
    from policy.backends.hf import HFBackend

    return HFBackend.from_pretrained(str(tiny_model_dir), adapter=str(tiny_adapter_dir))


@pytest.fixture(scope="module")
def chat_server(tiny_backend):
    """A real OpenAI-compatible server on 127.0.0.1 over the tiny model (LoRA served as 'vlm2vla')."""
    from policy.serve import ChatServer

    with ChatServer(tiny_backend, base_name="tiny-base", lora_name="vlm2vla") as server:
        yield server


def random_image(seed: int = 0, size: int = 48) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
