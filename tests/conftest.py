"""Shared test set-up: offline, CPU, offscreen rendering."""

import os

# Before anything imports mujoco or huggingface_hub.
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


import pytest  # noqa: E402

# Fixtures that several modules use, registered once for the whole suite (test modules request
# them by name and import nothing): the tiny model as an hf backend, its LoRA adapter, the chat server.
pytest_plugins = ["tests.policy_helpers"]


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny Gemma 3 (random weights, locally trained tokenizer) built once per test session."""
    from training.tiny import build_tiny

    return build_tiny(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session")
def gemma270m_dir():
    """The real Gemma 3 270M stand-in, prepared once into the project-local cache (kept between runs)."""
    from training.gemma270m import prepare

    return prepare(log=lambda m: print(f"gemma270m: {m}", flush=True))


def pytest_collection_finish(session):
    """Move everything imported during collection (torch, transformers, gradio, ...) out of
    the garbage collector's sight. Without this, each full collection walks millions of
    long-lived objects and stalls every thread of the in-process app server for tens of
    milliseconds, enough to make its streaming and timing look broken in the browser tests."""
    from policy.gcfreeze import freeze_long_lived_objects

    freeze_long_lived_objects()


@pytest.fixture(scope="module")
def one_thread():
    """Run torch on one thread for the module: the tiny model's matrices are too small to
    split, and on two busy cores one thread is faster and steadier (13x, measured)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
