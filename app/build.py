"""AppConfig → Runtime: the robot, the policy backend, the validator and VQA, as the flags say."""

from __future__ import annotations

from app.config import MICRO_MODEL, AppConfig, ConfigError
from app.robot_access import SharedRobot
from app.runtime import EpisodePolicy, Runtime, SetupNames


def _sim(cfg: AppConfig):
    from robot.sim.robot import SimRobot

    return SimRobot(seed=cfg.seed)


def _widowx(cfg: AppConfig):
    from robot.camera import Camera, CameraConfig
    from robot.widowx import WidowX

    source = cfg.camera if cfg.camera is not None else "0"
    camera = Camera(CameraConfig(source=int(source) if source.isdigit() else source))
    arm = WidowX(camera=camera)
    arm.connect()  # no interbotix_xs_modules: WidowXUnavailable (an ImportError) naming what to install
    camera.start()
    return arm


def build_runtime(cfg: AppConfig, camera_fps: float = 12.0) -> Runtime:
    from policy.backends import make_backend
    from policy.validators import make_validator

    raw = _sim(cfg) if cfg.robot == "sim" else _widowx(cfg)
    robot = SharedRobot(raw, step_s=cfg.pace if cfg.robot == "sim" else 0.0)

    model_backend = None
    if cfg.policy == "hf":
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # start-up ends with the demo's address, not a loading bar
        model_backend = make_backend("hf", model=cfg.model, adapter=cfg.adapter)
    elif cfg.policy == "openai":
        model_backend = make_backend("openai", server=cfg.server, model=cfg.model)

    fixed_validator = None
    if cfg.validator == "self":
        if model_backend is None:
            raise ConfigError("--validator self needs a model: use --policy hf or openai")
        fixed_validator = make_validator("self", backend=model_backend)
    elif cfg.validator in ("manual", "none", "gemini"):
        fixed_validator = make_validator(cfg.validator)

    def make_policy(instruction: str) -> EpisodePolicy:
        # manual: a fresh answer queue per episode
        validator = make_validator("manual") if cfg.validator == "manual" else fixed_validator
        if cfg.robot != "sim" or (cfg.policy != "scripted" and cfg.validator != "sim"):
            return EpisodePolicy(model_backend, validator)
        from policy.sim_episode import sim_episode
        from robot.sim.instructions import InstructionRefused, match_instruction

        try:
            task = match_instruction(instruction).task
        except InstructionRefused as e:
            if model_backend is None:  # the scripted expert speaks a task's ground truth: it needs one
                raise
            # A model reads the instruction itself, so it may try what the simulator cannot name; with no
            # task the simulator has nothing to judge by, and the person at the page does instead.
            return EpisodePolicy(model_backend, make_validator("manual"), notice=(
                f"The simulator cannot name this task ({e.reason}), so it cannot judge it: the model reads "
                "the instruction itself and you judge each subtask (the buttons under the stream)."))
        ep = sim_episode(robot, task, backend=model_backend,
                         validator=None if cfg.validator == "sim" else validator, chars_per_s=cfg.stream_cps)
        return EpisodePolicy(ep.backend, ep.validator)

    vqa = None
    if model_backend is not None:
        from policy import vqa as vqa_mod

        def vqa(image, question, adapter=True):
            return vqa_mod.ask(image, question, backend=model_backend, adapter=adapter)

    model = cfg.model or ("simulator expert (no weights)" if cfg.policy == "scripted" else "")
    if cfg.model == str(MICRO_MODEL / "base"):
        model = "micro VLM2VLA (assets/micro: 4 M-parameter Gemma 3 + LoRA)"
    elif cfg.adapter:
        model += f" + {cfg.adapter}"
    robot_name = "MuJoCo WidowX 250S (sim)" if cfg.robot == "sim" else "WidowX 250S"
    names = SetupNames(robot=robot_name, policy=cfg.policy, model=model, validator=cfg.validator)
    return Runtime(cfg, robot, make_policy, names, vqa=vqa, camera_fps=camera_fps)
