"""lmms-eval's model plugin: the entry point in group `lmms_eval.models` (pyproject.toml).

lmms-eval 0.7.3 reads models from that entry-point group when `lmms_eval.models` is first
imported (`@register_model` alone is not read by its evaluator; `--include_path` adds tasks,
not models). Once the project is installed in the eval environment (`make eval-setup`):

    lmms-eval --model vlm2vla --model_args pretrained=google/gemma-3-12b-it,adapter=run/ \\
        --tasks mmmu_val,mmstar,mme,ocrbench,mmbench_en_dev_static,textvqa_val,docvqa_val --output_path lmms/

This module imports nothing heavy: lmms-eval imports it while it builds its registry.
"""

from __future__ import annotations


def manifest():
    from lmms_eval.models.registry_v2 import ModelManifest

    return ModelManifest(model_id="vlm2vla", simple_class_path="evaluation.lmms_model.VLM2VLA")
