"""Benchmark: preference-training speed of selfimprove's trainer vs TRL's DPOTrainer, side by side in one run.

Same model (the `tiny` preset's shape: hidden 128, 4 layers, ~720-token byte-level BPE), same MCTS-like
step-level pairs (a shared prompt of ~150-250 tokens: question + the steps so far; completions of ~15-30
tokens: one chosen and one rejected next step), same fixed reference model (the policy with perturbed
weights, so that the first-step loss is not trivially log 2), same batches in the same order, same AdamW,
cosine schedule and clipping. Reports training tokens/s (a pair counts prompt+chosen and prompt+rejected
for both trainers), the speed ratio, and the per-step loss difference.

    python benchmarks/train.py                  # ~2-3 minutes on 2 busy CPU cores
    python benchmarks/train.py --steps 4        # quicker
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

from selfimprove.records import PreferencePair

# ---------------------------------------------------------------------------------------------------------
# MCTS-like pairs: question + prefix of steps as the prompt, two candidate next steps as completions

ITEMS = ["apples", "pencils", "stickers", "marbles", "books", "coins", "cards", "shells", "eggs", "boxes"]
NAMES = ["Tom", "Ana", "Li", "Sam", "Maya", "Ravi", "Zoe", "Omar", "Ines", "Kai"]


def _step(rng: random.Random, total: int) -> tuple[str, int]:
    """One solution line in GSM8K style (15-30 tokens: every digit is a token), and the total after it."""
    b = rng.randint(2, 99)
    op = "-" if total > 150 and rng.random() < 0.7 else rng.choice(["+", "-"]) if total > b else "+"
    value = total + b if op == "+" else total - b
    verb = "gets" if op == "+" else "gives away"
    return f"Then {verb} {b}, so {total}{op}{b}={value} left.\n", value


def make_pairs(n: int, tokenizer, seed: int) -> list[PreferencePair]:
    """n step-level pairs whose prompts run 150-250 tokens and completions 15-30."""
    rng = random.Random(seed)
    pairs = []
    while len(pairs) < n:
        name, item = rng.choice(NAMES), rng.choice(ITEMS)
        total = rng.randint(10, 99)
        question = (
            f"Question: {name} has {total} {item}. Over the week {name} changes the pile several times, "
            f"as written below. How many {item} are there at the end?\nAnswer:\n"
        )
        prompt, target = question, rng.randint(150, 230)  # the last step may overshoot by up to ~20
        while len(tokenizer(prompt, add_special_tokens=False)["input_ids"]) < target:
            line, total = _step(rng, total)
            prompt += line
        chosen, value = _step(rng, total)
        rejected = chosen.replace(f"={value} ", f"={value + rng.choice([-10, -1, 1, 10])} ")
        if rejected == chosen:
            continue
        pairs.append(PreferencePair(prompt, chosen, rejected, metadata={"kind": "step"}))
    return pairs


def tokenizer_corpus(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    texts = []
    for _ in range(n):
        total = rng.randint(10, 99)
        text = (
            f"Question: {rng.choice(NAMES)} has {total} {rng.choice(ITEMS)}. How many are there?\nAnswer:\n"
        )
        for _ in range(rng.randint(1, 4)):
            line, total = _step(rng, total)
            text += line
        texts.append(text + f"#### {total}")
    return texts


# ---------------------------------------------------------------------------------------------------------
# model: the cached `tiny` build if there is one, else the same shape freshly initialised


def prepare_models(folder: Path) -> tuple[Path, Path, str]:
    """Save the policy and a fixed reference (policy + noise) under `folder`; returns their paths."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from selfimprove.policy.tiny import PRESETS, default_cache_dir, make_model, train_tokenizer

    cached = default_cache_dir() / "models" / f"tiny-{PRESETS['tiny'].digest()}"
    if (cached / "build_info.json").exists():
        model, tokenizer = AutoModelForCausalLM.from_pretrained(cached), AutoTokenizer.from_pretrained(cached)
        source = f"cached tiny build {cached}"
    else:
        tokenizer = train_tokenizer(tokenizer_corpus(3000, seed=0), PRESETS["tiny"].vocab_size)
        model = make_model(PRESETS["tiny"], tokenizer, seed=0)
        source = "tiny preset shape, random init (no cached build)"
    model.save_pretrained(folder / "policy")
    tokenizer.save_pretrained(folder / "policy")
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.02 * torch.randn(p.shape, generator=generator))
    model.save_pretrained(folder / "reference")
    return folder / "policy", folder / "reference", source


# ---------------------------------------------------------------------------------------------------------
# the two trainers


def run_selfimprove(policy: Path, reference: Path, pairs, config) -> dict:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from selfimprove.train.trainer import train_preference

    model, tokenizer = AutoModelForCausalLM.from_pretrained(policy), AutoTokenizer.from_pretrained(policy)
    start = time.perf_counter()
    result = train_preference(model, tokenizer, pairs, config, reference=reference)
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "tokens": result.tokens,
        "losses": [m["train/loss"] for m in result.metrics],
        "logps_chosen": [m["logps/chosen"] for m in result.metrics],
    }


def run_trl(policy: Path, reference: Path, ordered_pairs, config, out_dir: Path) -> dict:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    class RecordingDPOTrainer(DPOTrainer):
        """TRL's DPOTrainer, unchanged, except that it keeps each step's exact loss (logs round it)."""

        losses: list[float]
        logps_chosen: list[float]

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            loss = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            self.losses.append(float(loss.detach()))
            self.logps_chosen.append(self._metrics["train"]["logps/chosen"][-1])
            return loss

    tokenizer = AutoTokenizer.from_pretrained(policy)
    model = AutoModelForCausalLM.from_pretrained(policy)
    ref_model = AutoModelForCausalLM.from_pretrained(reference)
    dataset = Dataset.from_list(
        [{"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected} for p in ordered_pairs]
    )
    args = DPOConfig(
        output_dir=str(out_dir),
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=1,
        num_train_epochs=1,  # the epochs are laid out in `ordered_pairs`
        learning_rate=config.lr,
        lr_scheduler_type="cosine",
        warmup_steps=0,
        weight_decay=0.0,
        adam_beta1=config.betas[0],
        adam_beta2=config.betas[1],
        max_grad_norm=config.max_grad_norm,
        beta=config.beta,
        loss_type=["sigmoid"],
        train_sampling_strategy="sequential",  # our batch order, fed in that order
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        bf16=False,
        seed=config.seed,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    trainer = RecordingDPOTrainer(
        model=model, ref_model=ref_model, args=args, train_dataset=dataset, processing_class=tokenizer
    )
    trainer.losses, trainer.logps_chosen = [], []
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    first = trainer.train_dataset[0]
    return {
        "seconds": seconds,
        "losses": trainer.losses,
        "logps_chosen": trainer.logps_chosen,
        "first_ids": (first["prompt_ids"], first["chosen_ids"], first["rejected_ids"]),
    }


# ---------------------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8, help="optimizer steps in all")
    parser.add_argument("--epochs", type=int, default=1, help="passes over steps * batch / epochs pairs")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=1, help="timed runs of each trainer, interleaved")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from transformers import AutoTokenizer

    from selfimprove.train.config import TrainConfig
    from selfimprove.train.data import plan_epoch, tokenize_pairs

    work = Path(tempfile.mkdtemp(prefix="bench_train_"))
    policy, reference, source = prepare_models(work)
    tokenizer = AutoTokenizer.from_pretrained(policy)
    if args.steps % args.epochs:
        parser.error(f"--steps {args.steps} must be a multiple of --epochs {args.epochs}")
    pairs = make_pairs(args.steps // args.epochs * args.batch_size, tokenizer, seed=0)
    items = tokenize_pairs(tokenizer, pairs, max_length=1024)
    prompt_lengths = [len(i.prompt_ids) for i in items]
    completion_lengths = [len(i.chosen_ids) for i in items] + [len(i.rejected_ids) for i in items]
    config = TrainConfig(
        lr=1e-4,
        beta=0.1,
        batch_size=args.batch_size,
        epochs=args.epochs,
        warmup_frac=0.0,
        min_lr_frac=0.0,  # = transformers' cosine schedule
        weight_decay=0.0,
        max_grad_norm=1.0,
        seed=0,
        device="cpu",
    )
    # TRL reads, sequentially and in one pass, the pairs of every epoch in the order our trainer batches them
    generator = torch.Generator().manual_seed(config.seed)
    lengths = [len(i.prompt_ids) + max(len(i.chosen_ids), len(i.rejected_ids)) for i in items]
    ordered = [
        pairs[items[i].index]
        for _ in range(config.epochs)
        for step in plan_epoch(lengths, batch_size=config.batch_size, grad_accum=1, generator=generator)
        for micro in step
        for i in micro
    ]

    runs: dict[str, list[dict]] = {
        "selfimprove": [],
        "selfimprove (no shared prompt)": [],
        "TRL DPOTrainer": [],
    }
    for repeat in range(args.repeats):
        runs["selfimprove"].append(run_selfimprove(policy, reference, pairs, config))
        runs["selfimprove (no shared prompt)"].append(
            run_selfimprove(
                policy, reference, pairs, TrainConfig(**{**config.to_dict(), "share_prompt": "never"})
            )
        )
        runs["TRL DPOTrainer"].append(run_trl(policy, reference, ordered, config, work / f"trl{repeat}"))

    # --- same tokens in both? -------------------------------------------------------------------------------
    trl_ids = runs["TRL DPOTrainer"][0]["first_ids"]
    first = next(i for i in items if pairs[i.index] is ordered[0])
    same_ids = (list(first.prompt_ids), list(first.chosen_ids), list(first.rejected_ids)) == tuple(
        map(list, trl_ids)
    )
    tokens = runs["selfimprove"][0]["tokens"]

    # --- report ---------------------------------------------------------------------------------------------
    trl_seconds = statistics.median(r["seconds"] for r in runs["TRL DPOTrainer"])
    print(f"model: {source}; {sum(p.numel() for p in _load(policy).parameters()):,} parameters")
    print(
        f"pairs: {len(pairs)}; prompt tokens {min(prompt_lengths)}-{max(prompt_lengths)} "
        f"(mean {statistics.mean(prompt_lengths):.0f}); completion tokens {min(completion_lengths)}-"
        f"{max(completion_lengths)} (mean {statistics.mean(completion_lengths):.0f}); "
        f"{tokens:,} training tokens per run"
    )
    print(f"batch {config.batch_size}, {args.steps} steps, {args.threads} threads, torch {torch.__version__}")
    print(f"tokenisation identical to TRL's on the first pair: {same_ids}\n")
    print("| trainer | seconds (median of runs) | tokens/s | speed vs TRL |")
    print("|---|---|---|---|")
    summary = {}
    for name, results in runs.items():
        seconds = statistics.median(r["seconds"] for r in results)
        summary[name] = {"seconds": [r["seconds"] for r in results], "tokens_per_s": tokens / seconds}
        each = ", ".join(f"{r['seconds']:.2f}" for r in results)
        print(f"| {name} | {seconds:.2f} ({each}) | {tokens / seconds:,.0f} | {trl_seconds / seconds:.2f}x |")
    ours, trl = runs["selfimprove"][0], runs["TRL DPOTrainer"][0]
    diffs = [abs(a - b) for a, b in zip(ours["losses"], trl["losses"], strict=True)]
    logp_diff = abs(ours["logps_chosen"][0] - trl["logps_chosen"][0])
    print(
        f"\nfirst-step loss: selfimprove {ours['losses'][0]:.7f}, TRL {trl['losses'][0]:.7f}, "
        f"|difference| {diffs[0]:.2e} (log 2 = {math.log(2):.7f})"
    )
    print(
        f"first-step mean log π(chosen): selfimprove {ours['logps_chosen'][0]:.6f}, "
        f"TRL {trl['logps_chosen'][0]:.6f}, |difference| {logp_diff:.2e}"
    )
    print(f"largest per-step loss difference over {len(diffs)} steps: {max(diffs):.2e}")
    plain = runs["selfimprove (no shared prompt)"][0]
    shared_diff = max(abs(a - b) for a, b in zip(ours["losses"], plain["losses"], strict=True))
    print(f"shared-prompt vs plain path, largest per-step loss difference: {shared_diff:.2e}")
    if args.json is not None:
        summary.update(
            {
                "first_step_loss_diff": diffs[0],
                "max_step_loss_diff": max(diffs),
                "shared_vs_plain_loss_diff": shared_diff,
                "tokens": tokens,
                "same_ids": same_ids,
            }
        )
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    return 0


def _load(path: Path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path)


if __name__ == "__main__":
    sys.exit(main())
