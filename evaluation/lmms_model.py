"""A thin lmms-eval model over the policy's own loader and VQA prompt (runs in the eval environment).

`VLM2VLA(pretrained=..., adapter=..., use_adapter=True)` loads the base model and the LoRA
adapter once (`policy.model.load_model` through the `hf` backend) and answers each request with
`policy.vqa` — the same chat format the demo's VQA tab uses. `use_adapter` is an attribute:
flip it to answer as the base model with the same weights in memory (PEFT's
`disable_adapter()`), which is how `python -m evaluation.vqa` scores base and adapter in one
process. Generation is greedy; `max_new_tokens` comes from the task (default 64). Only
`generate_until` tasks are supported (all seven of the paper's benchmarks are).
"""

from __future__ import annotations

from typing import Any

from lmms_eval.api.model import lmms
from tqdm import tqdm


def _flag(v: Any) -> bool:
    return v if isinstance(v, bool) else str(v).strip().lower() in ("1", "true", "yes", "on")


class VLM2VLA(lmms):
    def __init__(self, pretrained: str, adapter: str | None = None, use_adapter: Any = True,
                 max_new_tokens: int = 64, batch_size: Any = 1, device: str | None = None, **kwargs: Any) -> None:
        super().__init__()
        from policy.backends.hf import HFBackend
        from policy.vqa import VQA

        self.backend = HFBackend.from_pretrained(pretrained, adapter=adapter or None)
        self.vqa = VQA(self.backend, max_new_tokens=int(max_new_tokens))
        self.has_adapter = bool(adapter)
        self.use_adapter = _flag(use_adapter) and self.has_adapter
        self.max_new_tokens = int(max_new_tokens)
        self.task_dict: dict = {}  # filled by lmms-eval's evaluator: task -> split -> docs
        self._rank, self._world_size = 0, 1

    @property
    def rank(self) -> int:
        return self._rank

    @property
    def world_size(self) -> int:
        return self._world_size

    def generate_until(self, requests: list) -> list[str]:
        out = []
        for req in tqdm(requests, desc=f"vlm2vla ({'adapter' if self.use_adapter else 'base'})", disable=len(requests) < 2):
            context, gen_kwargs, doc_to_visual, doc_id, task, split = req.args
            visuals = [v for v in doc_to_visual(self.task_dict[task][split][doc_id]) if v is not None]
            image = visuals[0] if visuals else None  # the VQA prompt takes one image, as the demo's
            context = context.replace("<image>", "").strip()
            n = int((gen_kwargs or {}).get("max_new_tokens", self.max_new_tokens))
            answer = self.vqa.ask(image, context, adapter=self.use_adapter, max_new_tokens=n).text()
            for stop in (gen_kwargs or {}).get("until", []) or []:
                if isinstance(stop, str) and stop and stop in answer:
                    answer = answer.split(stop, 1)[0]
            out.append(answer.strip())
        return out

    def loglikelihood(self, requests: list) -> list:
        raise NotImplementedError("vlm2vla answers generate_until tasks (the paper's seven VQA benchmarks are); "
                                  "this task asks for log-likelihoods")

    def generate_until_multi_round(self, requests: list) -> list[str]:
        raise NotImplementedError("vlm2vla does not run multi-round tasks")
