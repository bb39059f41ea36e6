"""An offline lmms-eval task for tests and smoke runs: MME's scoring on generated pictures.

`write_toy_task(folder)` writes `vlm2vla_toy_mme.yaml`, its `utils.py` (which re-exports the real
`lmms_eval.tasks.mme.utils`: the same prompt, answer parsing and pairwise acc + acc+ score) and
`toy.parquet` (images with the `datasets` Image feature): a coloured square on a grey ground, two
questions per picture as MME asks them — one whose answer is yes, one no. Use it with
`python -m evaluation.vqa lmms --include-path FOLDER --tasks vlm2vla_toy_mme ...`.
"""

from __future__ import annotations

from pathlib import Path

COLOURS = {"red": (220, 30, 30), "green": (30, 180, 60), "blue": (40, 60, 220), "yellow": (235, 210, 40)}
TASK = "vlm2vla_toy_mme"

_YAML = """\
# An offline MME-style task (written by evaluation/toy_task.py): local parquet, MME's own scoring.
dataset_path: parquet
dataset_kwargs:
  data_files:
    test: {data}
task: {task}
test_split: test
output_type: generate_until
doc_to_visual: !function utils.mme_doc_to_visual
doc_to_text: !function utils.mme_doc_to_text
doc_to_target: "answer"
generation_kwargs:
  max_new_tokens: 8
  temperature: 0
  do_sample: false
process_results: !function utils.mme_process_results
metric_list:
  - metric: mme_perception_score
    aggregation: !function utils.mme_aggregate_results
    higher_is_better: true
lmms_eval_specific_kwargs:
  default:
    pre_prompt: ""
    post_prompt: "\\nAnswer the question using a single word or phrase."
metadata:
  - version: 0.0
"""


def write_toy_task(folder: str | Path, pictures: int = 4) -> Path:
    """Write the task into `folder`; returns the YAML's path."""
    from datasets import Dataset, Image, disable_progress_bars
    from PIL import Image as PILImage

    disable_progress_bars()

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    names = list(COLOURS)
    rows: dict[str, list] = {"question_id": [], "question": [], "answer": [], "category": [], "image": []}
    for i in range(pictures):
        colour, other = names[i % len(names)], names[(i + 1) % len(names)]
        img = PILImage.new("RGB", (64, 64), (128, 128, 128))
        img.paste(COLOURS[colour], (16, 16, 48, 48))
        path = folder / f"picture{i}.png"
        img.save(path)
        for asked, answer in ((colour, "Yes"), (other, "No")):
            rows["question_id"].append(f"picture{i}.png")
            rows["question"].append(f"Is the square in the picture {asked}? Please answer yes or no.")
            rows["answer"].append(answer)
            rows["category"].append("color")
            rows["image"].append(str(path))
    Dataset.from_dict(rows).cast_column("image", Image()).to_parquet(str(folder / "toy.parquet"))
    (folder / "utils.py").write_text("# the real MME task's functions (lmms-eval 0.7.3)\nfrom lmms_eval.tasks.mme.utils import *  # noqa: F401,F403\n")
    yaml = folder / f"{TASK}.yaml"
    yaml.write_text(_YAML.format(data=(folder / "toy.parquet").resolve(), task=TASK))
    return yaml
