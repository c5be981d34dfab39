"""Is the transformers backend's generation repeatable on a GPU? Greedy twice, and batched vs one prompt at
a time, in float32 and bfloat16, on gpu_check's random 100M Llama. Prints the fraction of identical
completions per setting and the top-2 logit gap of one prompt (near-ties are what rounding flips).

    CUBLAS_WORKSPACE_CONFIG=:4096:8 python benchmarks/gpu_determinism.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gpu_check import NEW_TOKENS, PROMPTS, build_model, same_fraction

from selfimprove.policy.hf import HFPolicy
from selfimprove.tasks.recipe import format_prompt, load_recipe, load_tasks


def main() -> None:
    if not torch.cuda.is_available():
        sys.exit("gpu_determinism: needs a CUDA device")
    path = build_model(Path(tempfile.mkdtemp()) / "model", small=False)
    recipe = load_recipe("arith")
    prompts = [format_prompt(recipe, t) for t in load_tasks(recipe, "test", PROMPTS, seed=0, steps=2)]
    greedy = {"n": 1, "max_new_tokens": NEW_TOKENS, "temperature": 0.0}
    for dtype in ["float32", "bfloat16"]:
        for batch_size in [None, 8]:
            policy = HFPolicy.from_pretrained(path, device="cuda", dtype=dtype, batch_size=batch_size)
            first, second = policy.generate(prompts, **greedy), policy.generate(prompts, **greedy)
            with torch.inference_mode():
                ids = torch.tensor([policy.encode_prompts(prompts[:1])[0]], device="cuda")
                top = policy.model(ids).logits[0, -1].float().topk(2).values
            print(
                f"{dtype} batch {batch_size}: greedy repeat identical {same_fraction(first, second):.1%}, "
                f"top-2 gap {float(top[0] - top[1]):.3f}",
                flush=True,
            )
            alone = [policy.generate([p], **greedy)[0] for p in prompts[:16]]
            identical = same_fraction(first[:16], alone)
            print(f"{dtype} batch {batch_size}: batched vs alone identical {identical:.1%}", flush=True)


if __name__ == "__main__":
    main()
