"""The shipped many-GPU configs, read by the tools that will read them on a GPU node.

training/configs/accelerate_zero2.yaml goes through what `accelerate launch --config_file ...` does
(its own argument checks and the environment its DeepSpeed launcher hands the workers), accelerate's
DeepSpeedPlugin builds the DeepSpeed config from that environment, transformers fills its "auto"
values from training.finetune's own SFT settings, and DeepSpeed's config parser accepts the result.
accelerate_fsdp.yaml goes through the same launch checks and accelerate's FSDP plugin. Nothing here
needs a GPU, and neither config is launched (DeepSpeed's engine and FSDP wait for GPUs; the README's
Training section says what was exercised and what was not).
"""

from __future__ import annotations

from pathlib import Path

import pytest

CONFIGS = Path(__file__).resolve().parents[1] / "training" / "configs"


def _launch_env(config: Path, monkeypatch) -> tuple[object, dict]:
    """accelerate launch's own parsing of a config file; the worker environment it would export."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_deepspeed_cmd_env, prepare_multi_gpu_env

    args = launch_command_parser().parse_args(["--config_file", str(config), "-m", "training.finetune"])
    args, defaults, mp_from_config = _validate_launch_command(args)
    if args.use_deepspeed:  # (launch_command sets this field before calling the DeepSpeed launcher)
        fields = list(defaults.deepspeed_config) + (["mixed_precision"] if mp_from_config else [])
        args.deepspeed_fields_from_accelerate_config = ",".join(fields)
        _, env = prepare_deepspeed_cmd_env(args)
    else:
        env = prepare_multi_gpu_env(args)
    for k, v in env.items():
        if k.startswith(("ACCELERATE_", "FSDP_")):
            monkeypatch.setenv(k, v)
    return args, env


def test_zero2_config_passes_accelerate_transformers_and_deepspeed_parsing(monkeypatch):
    pytest.importorskip("deepspeed", reason="pip install -r requirements.txt installs deepspeed")
    from accelerate.utils import DeepSpeedPlugin
    from deepspeed.runtime.config import DeepSpeedConfig
    from transformers.integrations.deepspeed import HfTrainerDeepSpeedConfig

    from training.finetune import FinetuneConfig, _sft_config

    args, env = _launch_env(CONFIGS / "accelerate_zero2.yaml", monkeypatch)
    assert args.use_deepspeed and args.num_processes == 8 and args.mixed_precision == "bf16"
    assert env["ACCELERATE_USE_DEEPSPEED"] == "true" and env["ACCELERATE_DEEPSPEED_ZERO_STAGE"] == "2"

    plugin = DeepSpeedPlugin()  # reads the launcher's environment, as each worker does
    plugin.set_mixed_precision(args.mixed_precision)
    ds = plugin.deepspeed_config
    assert ds["zero_optimization"]["stage"] == 2 and ds["bf16"]["enabled"]

    # the "auto" fields as the Trainer fills them, from finetune's defaults on a bf16 device
    sft = _sft_config(FinetuneConfig(base="b", data="d", out="o", bf16=True), on_gpu=False, has_eval=False)
    hf = HfTrainerDeepSpeedConfig(ds)
    hf.trainer_config_process(sft)
    assert hf.is_zero2() and not hf.is_offload()
    filled = hf.config
    assert "auto" not in str(filled), filled
    assert filled["train_batch_size"] == 8 and filled["train_micro_batch_size_per_gpu"] == 1  # paper's batch 8

    parsed = DeepSpeedConfig(filled)  # DeepSpeed's own parser and its batch-size arithmetic (world size 1 here)
    assert parsed.zero_optimization_stage == 2 and parsed.bfloat16_config.enabled
    assert parsed.train_batch_size == 8 and parsed.gradient_accumulation_steps == 8


def test_fsdp_config_passes_accelerate_parsing(monkeypatch):
    from accelerate.utils import FullyShardedDataParallelPlugin

    args, env = _launch_env(CONFIGS / "accelerate_fsdp.yaml", monkeypatch)
    assert args.use_fsdp and args.num_processes == 8 and args.mixed_precision == "bf16"
    assert env["ACCELERATE_USE_FSDP"] == "true" and env["FSDP_VERSION"] == "2"

    plugin = FullyShardedDataParallelPlugin()  # reads the launcher's environment, as each worker does
    assert plugin.fsdp_version == 2 and plugin.reshard_after_forward is True
    assert "FULL_STATE_DICT" in str(plugin.state_dict_type)  # Trainer.save_model writes the adapter only then
    assert set(plugin.transformer_cls_names_to_wrap) == {"Gemma3DecoderLayer", "SiglipEncoderLayer"}
    assert not plugin.activation_checkpointing  # finetune turns on the trainer's own on GPU; both is an error

    import transformers.models.gemma3.modeling_gemma3 as gemma3
    import transformers.models.siglip.modeling_siglip as siglip

    assert hasattr(gemma3, "Gemma3DecoderLayer") and hasattr(siglip, "SiglipEncoderLayer")  # the names exist
