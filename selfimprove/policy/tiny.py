"""The embedded tiny model: a byte-level BPE tokenizer and a small Llama, warm-started by SFT on arith.

No weights can be downloaded on the machines this engine must run on, so the default run builds its own
model: a tokenizer trained with the `tokenizers` library (every digit its own token, the engine's special
tokens included) and a `LlamaForCausalLM` from config, trained with the loss on solution tokens only.
The result is saved with `save_pretrained` and loads with `AutoModelForCausalLM.from_pretrained`; it is
cached by the hash of its config so a second build returns at once.

Sizes follow ../shared/docs/MEASURED.md (about 1M parameters learn 1-4 step arithmetic on 2 CPU cores,
5M+ learned almost nothing in the same time) and our own build-time measurements (docs/benchmarks.md):
hidden 96 (0.55M parameters) trains 1.5x faster per token than hidden 128 and still learns, while halving
the examples seen (2,200 steps of 16) left hidden 128 unable to do arithmetic. Learning is abrupt, so the
budget is in optimizer steps, never in minutes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import random
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

logger = logging.getLogger(__name__)

PAD_TOKEN = "<|pad|>"
END_TOKEN = "<|end|>"
THINKING_OPEN, THINKING_CLOSE = "<|thinking|>", "<|/thinking|>"
REFLECT_OPEN, REFLECT_CLOSE = "<|reflect|>", "<|/reflect|>"
SPECIAL_TOKENS = (PAD_TOKEN, END_TOKEN, THINKING_OPEN, THINKING_CLOSE, REFLECT_OPEN, REFLECT_CLOSE)


@dataclass(frozen=True)
class TinyModelConfig:
    """Everything that determines the built model; its hash names the cache folder."""

    # tokenizer
    vocab_size: int = 720  # byte-level BPE; ~720 covers the generator's words with digits split
    tokenizer_corpus: int = 20_000  # generated problems the tokenizer is trained on
    # model (LlamaConfig)
    hidden_size: int = 96
    intermediate_size: int = 288
    num_layers: int = 4
    num_heads: int = 4
    max_positions: int = 512
    # warm start (SFT on the arith train split, loss on solution tokens only)
    train_problems: int = 80_000
    min_steps: int = 1
    max_steps: int = 4
    optimizer_steps: int = 2_600
    batch_size: int = 24
    lr: float = 3e-3
    warmup_frac: float = 0.03
    min_lr_frac: float = 0.1  # cosine decays to this fraction of lr
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.98)
    grad_clip: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} must be divisible by num_heads {self.num_heads}"
            )
        if not 1 <= self.min_steps <= self.max_steps <= 8:
            raise ValueError(f"need 1 <= min_steps <= max_steps <= 8, got {self.min_steps}..{self.max_steps}")
        for name in ("vocab_size", "optimizer_steps", "batch_size", "train_problems"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")

    def digest(self) -> str:
        """Hash of the config and the generator version: a change to either means a different model."""
        from selfimprove.tasks.arith import GENERATOR_VERSION

        key = {**asdict(self), "generator_version": GENERATOR_VERSION}
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]


PRESETS: dict[str, TinyModelConfig] = {
    # the embedded default: 0.55M parameters, 11.5 minutes on 2 idle cores (docs/benchmarks.md)
    "tiny": TinyModelConfig(),
    # for tests and smoke runs: well-formed GSM8K-style output in well under a minute
    "test": TinyModelConfig(
        vocab_size=400,
        tokenizer_corpus=3_000,
        hidden_size=64,
        intermediate_size=192,
        num_layers=2,
        num_heads=4,
        train_problems=6_000,
        min_steps=1,
        max_steps=2,
        optimizer_steps=250,
        batch_size=16,
    ),
}


def default_cache_dir() -> Path:
    return Path(os.environ.get("SELFIMPROVE_CACHE", Path.home() / ".cache" / "selfimprove"))


# ---------------------------------------------------------------------------------------------------------
# tokenizer


def train_tokenizer(texts: Sequence[str], vocab_size: int):
    """Train a byte-level BPE (digits split into single tokens) and wrap it as a transformers fast tokenizer.

    Single-digit tokens keep the arithmetic learnable: `128` is always `1 2 8`, never a merged token.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token=PAD_TOKEN,
        eos_token=END_TOKEN,
        additional_special_tokens=[THINKING_OPEN, THINKING_CLOSE, REFLECT_OPEN, REFLECT_CLOSE],
        padding_side="left",
        clean_up_tokenization_spaces=False,
    )


def make_model(config: TinyModelConfig, tokenizer, *, seed: int):
    """A freshly initialised LlamaForCausalLM sized by `config` (tied embeddings)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    llama_config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        num_key_value_heads=config.num_heads,
        max_position_embeddings=config.max_positions,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(llama_config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = None
    return model


# ---------------------------------------------------------------------------------------------------------
# supervised warm start


def _sft_examples(prompts: Sequence[str], solutions: Sequence[str], tokenizer) -> list[tuple[list[int], int]]:
    """(token ids of prompt + solution + end, number of prompt tokens) for each example."""
    prompt_ids = tokenizer(list(prompts), add_special_tokens=False)["input_ids"]
    solution_ids = tokenizer(list(solutions), add_special_tokens=False)["input_ids"]
    eos = tokenizer.eos_token_id
    return [(p + s + [eos], len(p)) for p, s in zip(prompt_ids, solution_ids, strict=True)]


def _lr_at(step: int, config: TinyModelConfig) -> float:
    """Linear warm-up, then cosine down to min_lr_frac * lr."""
    warmup = max(1, int(config.warmup_frac * config.optimizer_steps))
    if step < warmup:
        return config.lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, config.optimizer_steps - warmup)
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return config.lr * (config.min_lr_frac + (1 - config.min_lr_frac) * cosine)


def _collate(batch: Sequence[tuple[list[int], int]], pad_id: int) -> tuple[torch.Tensor, ...]:
    """Right-padded ids, attention mask and labels (-100 on prompt and padding)."""
    width = max(len(ids) for ids, _ in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(batch), width), dtype=torch.long)
    labels = torch.full((len(batch), width), -100, dtype=torch.long)
    for row, (ids, prompt_len) in enumerate(batch):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        attention[row, : len(ids)] = 1
        labels[row, prompt_len : len(ids)] = torch.tensor(ids[prompt_len:])
    return input_ids, attention, labels


ProgressFn = Callable[[int, int, dict[str, float]], None]


def _length_bucketed_batches(lengths: Sequence[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """One epoch of batches of similar-length examples, in random order.

    Shuffle, sort within windows of 64 batches, cut into batches, shuffle the batches: padding drops
    from ~40% of a random batch to a few percent while the data order stays random.
    """
    order = list(range(len(lengths)))
    rng.shuffle(order)
    window = 64 * batch_size
    batches = []
    for begin in range(0, len(order) - batch_size + 1, window):
        chunk = sorted(order[begin : begin + window], key=lengths.__getitem__)
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk) - batch_size + 1, batch_size)]
    rng.shuffle(batches)
    return batches


def sft_warm_start(
    model,
    examples: list[tuple[list[int], int]],
    config: TinyModelConfig,
    *,
    pad_id: int,
    progress: ProgressFn | None,
) -> dict[str, float]:
    """Train `model` in place for `config.optimizer_steps` steps; returns summary statistics."""
    rng = random.Random(config.seed)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.lr,
        betas=config.betas,
    )
    model.train()
    batches: list[list[int]] = []
    tokens_seen, start, loss_ema = 0, time.perf_counter(), float("nan")
    for step in range(config.optimizer_steps):
        if not batches:
            batches = _length_bucketed_batches([len(ids) for ids, _ in examples], config.batch_size, rng)
        batch = [examples[i] for i in batches.pop()]
        input_ids, attention, labels = _collate(batch, pad_id)
        for group in optimizer.param_groups:
            group["lr"] = _lr_at(step, config)
        loss = model(input_ids=input_ids, attention_mask=attention, labels=labels).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        tokens_seen += int(attention.sum())
        loss_ema = loss.item() if math.isnan(loss_ema) else 0.95 * loss_ema + 0.05 * loss.item()
        if progress is not None:
            elapsed = time.perf_counter() - start
            progress(
                step + 1, config.optimizer_steps, {"loss": loss_ema, "tokens_per_s": tokens_seen / elapsed}
            )
    model.eval()
    seconds = time.perf_counter() - start
    return {
        "final_loss": loss_ema,
        "tokens": tokens_seen,
        "seconds": seconds,
        "tokens_per_s": tokens_seen / seconds,
    }


# ---------------------------------------------------------------------------------------------------------
# build + cache


def build_tiny_model(
    preset: str | TinyModelConfig = "tiny",
    *,
    cache_dir: str | Path | None = None,
    progress: ProgressFn | None = None,
) -> Path:
    """Build (or reuse from cache) the tiny model; returns the folder that `from_pretrained` loads."""
    from selfimprove.tasks.arith import generate_tasks
    from selfimprove.tasks.recipe import format_prompt, load_recipe

    if isinstance(preset, str):
        if preset not in PRESETS:
            raise ValueError(f"unknown tiny-model preset {preset!r}; choose from {sorted(PRESETS)}")
        name, config = preset, PRESETS[preset]
    else:
        name, config = "custom", preset
    target = Path(cache_dir or default_cache_dir()) / "models" / f"{name}-{config.digest()}"
    if (target / "build_info.json").exists():
        logger.info("tiny model %s found in cache at %s", name, target)
        return target

    recipe = load_recipe("arith")
    tasks = generate_tasks(
        "train",
        config.train_problems,
        seed=config.seed,
        min_steps=config.min_steps,
        max_steps=config.max_steps,
    )
    prompts = [format_prompt(recipe, t) for t in tasks]
    solutions = [t.solution or "" for t in tasks]

    corpus = [p + s for p, s in zip(prompts[: config.tokenizer_corpus], solutions, strict=False)]
    tokenizer = train_tokenizer(corpus, config.vocab_size)
    model = make_model(config, tokenizer, seed=config.seed)
    n_params = sum(p.numel() for p in model.parameters())
    logger.info("tiny model %s: %d parameters, vocabulary %d", name, n_params, len(tokenizer))

    examples = _sft_examples(prompts, solutions, tokenizer)
    stats = sft_warm_start(model, examples, config, pad_id=tokenizer.pad_token_id, progress=progress)

    staging = target.with_name(target.name + f".tmp{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging, safe_serialization=True)
    tokenizer.save_pretrained(staging)
    info = {
        "preset": name,
        "config": asdict(config),
        "parameters": n_params,
        "vocab": len(tokenizer),
        **stats,
    }
    (staging / "build_info.json").write_text(json.dumps(info, indent=2) + "\n")
    if target.exists():  # another process finished the same build first; theirs is equivalent
        shutil.rmtree(staging)
    else:
        staging.rename(target)
    return target
