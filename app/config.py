"""Command-line flags of `python -m app` and the access rule (loopback, or auth)."""

from __future__ import annotations

import argparse
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from app.report_view import DEFAULT_FOLDER as REPORT_FOLDER
from app.report_view import default_folder as default_report_folder

AUTH_ENV = "VLM2VLA_AUTH"
#: The embedded default model (python -m training.micro ... ship --to assets/micro): base + LoRA adapter.
MICRO_MODEL = Path(__file__).resolve().parents[1] / "assets" / "micro"


class ConfigError(ValueError):
    """A flag combination the demo refuses; the message says what to do."""


@dataclass(frozen=True)
class AppConfig:
    robot: str = "sim"
    policy: str = "scripted"
    model: str | None = None
    adapter: str | None = None
    server: str | None = None
    validator: str = "sim"
    camera: str | None = None
    host: str = "127.0.0.1"
    port: int = 7860
    share: bool = False
    auth: tuple[str, str] | None = None
    seed: int = 0
    max_retries: int = 2
    stream_cps: float = 150.0  # scripted backend: characters per second it streams at (0 = instant)
    logs: str = "out/app-logs"
    pace: float = 0.2  # seconds per arm step shown on the camera (the 5 Hz control rate)
    step_through: bool = False
    report: str = REPORT_FOLDER  # the folder of python -m evaluation.report's report, shown read-only on the Evaluation tab


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m app",
        description="VLM2VLA web demo. With no flags: simulated arm, the embedded micro VLM2VLA model, sim validator at http://127.0.0.1:7860.",
    )
    p.add_argument("--robot", choices=["sim", "widowx"], default="sim", help="the arm (default: sim)")
    p.add_argument("--policy", choices=["scripted", "hf", "openai"], default="hf",
                   help="policy backend (default: hf with the embedded micro model in assets/micro; "
                        "scripted: the simulator expert, no weights)")
    p.add_argument("--model", help="hf: base model hub id or folder (default: assets/micro/base); openai: served model name")
    p.add_argument("--adapter", help="hf: LoRA adapter folder (default with the micro base: assets/micro/lora; VQA can switch it off)")
    p.add_argument("--server", help="openai: base URL of an OpenAI-compatible server, e.g. http://localhost:8000/v1")
    p.add_argument("--validator", choices=["sim", "self", "gemini", "manual", "none"], default=None,
                   help="who decides a subtask is done (default: sim with the sim robot, manual with widowx)")
    p.add_argument("--camera", help="widowx: OpenCV camera index or URL")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; anything else needs --auth)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--share", action="store_true", help="Gradio share link (needs --auth)")
    p.add_argument("--auth", help=f"USER:PASS for the login page (or set {AUTH_ENV})")
    p.add_argument("--seed", type=int, default=0, help="first scene seed (sim)")
    p.add_argument("--max-retries", type=int, default=2, help="retries per subtask before the episode fails")
    p.add_argument("--stream-cps", type=float, default=150.0,
                   help="scripted policy: characters per second it streams at, so the stream is watchable (0 = instant)")
    p.add_argument("--pace", type=float, default=0.2,
                   help="seconds per arm step, so a simulated arm moves in real time (5 Hz = 0.2; 0 = as fast as it computes)")
    p.add_argument("--logs", default="out/app-logs", help="folder for the episode logs offered as downloads")
    p.add_argument("--report", default=None, metavar="DIR",
                   help="folder of the evaluation report the Evaluation tab shows, read-only (default results/, where "
                        "python -m evaluation.report writes it, or the shipped micro model's report until results/ has "
                        "one); re-read when the tab is opened")
    return p


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_auth(value: str | None) -> tuple[str, str] | None:
    if not value:
        return None
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise ConfigError(f"--auth must be USER:PASS with both parts non-empty, got {value!r}")
    return user, password


def from_args(argv: list[str] | None = None, env: dict[str, str] | None = None) -> AppConfig:
    env = os.environ if env is None else env
    a = parser().parse_args(argv)
    auth = parse_auth(a.auth or env.get(AUTH_ENV))
    if (a.share or not is_loopback(a.host)) and auth is None:
        where = "--share" if a.share else f"--host {a.host}"
        raise ConfigError(
            f"refusing to start: {where} exposes the robot beyond this machine; add --auth USER:PASS "
            f"(or set {AUTH_ENV}=USER:PASS), or bind 127.0.0.1"
        )
    if a.policy == "openai" and not a.server:
        raise ConfigError("--policy openai needs --server URL (an OpenAI-compatible endpoint, e.g. vllm serve)")
    model, adapter = a.model, a.adapter
    if a.policy == "hf" and not model:
        if not (MICRO_MODEL / "base" / "config.json").exists():
            raise ConfigError(f"the embedded micro model is missing ({MICRO_MODEL / 'base'}): restore it with "
                              "git checkout -- assets/micro, give --model, or use --policy scripted")
        model, adapter = str(MICRO_MODEL / "base"), adapter or str(MICRO_MODEL / "lora")
    if a.robot == "widowx" and a.policy == "scripted":
        raise ConfigError("the scripted policy reads the simulator's ground truth; with --robot widowx use --policy hf or openai")
    validator = a.validator or ("sim" if a.robot == "sim" else "manual")
    if validator == "sim" and a.robot != "sim":
        raise ConfigError("--validator sim reads the simulator's ground truth; with --robot widowx use self, gemini, manual or none")
    if not 1 <= a.port <= 65535:
        raise ConfigError(f"--port must be 1..65535, got {a.port}")
    from app.limits import LimitError, check_log_folder

    try:  # the log folder is served to the page: only one the demo owns
        check_log_folder(a.logs)
    except LimitError as e:
        raise ConfigError(str(e)) from None
    return AppConfig(
        robot=a.robot, policy=a.policy, model=model, adapter=adapter, server=a.server, validator=validator,
        camera=a.camera, host=a.host, port=a.port, share=a.share, auth=auth, seed=a.seed,
        max_retries=a.max_retries, stream_cps=max(0.0, a.stream_cps), logs=a.logs, pace=max(0.0, a.pace),
        report=a.report or default_report_folder(),
    )
