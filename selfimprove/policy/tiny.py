"""The embedded tiny model: a byte-level BPE tokenizer and a small Llama, warm-started by SFT on arith.

No weights can be downloaded on the machines this engine must run on, so the default run builds its own
model: a tokenizer trained with the `tokenizers` library (every digit its own token, the engine's special
tokens included) and a `LlamaForCausalLM` from config, trained with the loss on solution tokens only.
The result is saved with `save_pretrained` and loads with `AutoModelForCausalLM.from_pretrained`; it is
cached by the hash of its config so a second build returns at once.

Sizes follow ../shared/docs/MEASURED.md (about 1M parameters learn 1-4 step arithmetic on 2 CPU cores,
5M+ learned almost nothing in the same time) and our own build-time measurements (docs/benchmarks.md):
hidden 96 trains 1.5x faster per token than hidden 128 and still learns, and 3 layers instead of 4 (0.43M
parameters) 1.3x faster again, bringing the build under 10 minutes with the hard split still in the target
band; halving the examples seen (2,200 steps of 16) left hidden 128 unable to do arithmetic. Learning is
abrupt, so the budget is in optimizer steps, never in minutes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch

from selfimprove.policy.warm_start import ProgressFn, encode_examples, sft_warm_start

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
    num_layers: int = 3
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
    # thinking variant (PRefLexOR, knowledge/thinking_data.py): this share of the warm-start examples
    # think before they answer, and this share of those reflect on a wrong attempt and refine it
    thinking_fraction: float = 0.0
    reflect_fraction: float = 0.0
    confirm_fraction: float = 0.0  # of the reflection examples: a right attempt, reflected on and kept
    # the thinking ends with a Work line: each operation split by place value (knowledge/work.py)
    thinking_work: bool = False
    # the thinking's Plan line names each result ("a=10*7, b=a-19") instead of using it ("10*7, 70-19")
    thinking_named_plan: bool = False
    # every solution line shows its operation's place-value work before the annotation (work.inline_work)
    solution_work: bool = False
    # prompt + completion characters of a reflection example at most (thinking_data.MAX_REFLECT_CHARS)
    max_reflect_chars: int = 800
    # share of warm-start problems per step count min_steps..max_steps; empty: uniform
    step_mix: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        counts = self.max_steps - self.min_steps + 1
        if self.step_mix and (
            len(self.step_mix) != counts
            or any(not w >= 0 for w in self.step_mix)
            or abs(sum(self.step_mix) - 1) > 1e-6
        ):
            raise ValueError(
                f"step_mix={self.step_mix!r}: need {counts} non-negative shares (steps "
                f"{self.min_steps}..{self.max_steps}) summing to 1, or () for uniform"
            )
        for name in ("thinking_fraction", "reflect_fraction", "confirm_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} must be divisible by num_heads {self.num_heads}"
            )
        if not 1 <= self.min_steps <= self.max_steps <= 8:
            raise ValueError(f"need 1 <= min_steps <= max_steps <= 8, got {self.min_steps}..{self.max_steps}")
        for name in ("vocab_size", "optimizer_steps", "batch_size", "train_problems", "max_reflect_chars"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")

    def digest(self) -> str:
        """Hash of the config and the generator version: a change to either means a different model."""
        from selfimprove.tasks.arith import GENERATOR_VERSION

        # fields added after a preset was published count only when set, so that preset keeps its hash
        defaults = {f.name: f.default for f in fields(self) if f.name in _LATER_FIELDS}
        key = {k: v for k, v in asdict(self).items() if not (k in defaults and v == defaults[k])}
        key["generator_version"] = GENERATOR_VERSION
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]


_LATER_FIELDS = (
    "thinking_fraction",
    "reflect_fraction",
    "confirm_fraction",
    "step_mix",
    "thinking_work",
    "thinking_named_plan",
    "max_reflect_chars",
    "solution_work",
)
# Knowledge-graph corpus of the thinking variant: enough solved problems that the Example line of
# retrieval finds one with the same operations (95.9% of lines on a 20,000-problem graph, P1 notes),
# without paying for a graph of the whole training set.
THINKING_GRAPH_TASKS = 10_000

PRESETS: dict[str, TinyModelConfig] = {
    # the embedded default: 0.43M parameters, under 9 minutes on 2 idle cores (docs/benchmarks.md)
    "tiny": TinyModelConfig(),
    # the same model with each solution line's place-value work written inline before its annotation:
    # twice the hard-split accuracy, but a 12-minute build (1.47x the tokens); configs/tiny_work.toml runs it
    "tiny-work": TinyModelConfig(solution_work=True),
    # the thinking variant for PRefLexOR (issue #8): every warm-start example thinks (Concepts, Example,
    # Known, a Plan that names each result) and answers with `tiny-work`'s inline work; 30% of them reflect
    # on an earlier attempt, half of those confirming a right one (a model that only saw planted slips
    # "finds" one in every answer). 1,024 positions: a 4-step refinement round has its attempt in the
    # prompt. The thinking formats measured before it (half thinking, a Work line, 4 layers) hurt the model:
    # docs/benchmarks.md, "PRefLexOR".
    "tiny-think": TinyModelConfig(
        thinking_fraction=1.0,
        reflect_fraction=0.3,
        confirm_fraction=0.5,
        thinking_named_plan=True,
        solution_work=True,
        max_positions=1024,
    ),
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
# build + cache


def _warm_start_tasks(config: TinyModelConfig) -> list:
    """`train_problems` arith train problems: uniform over the step counts, or in `step_mix` shares."""
    from selfimprove.tasks.arith import generate_tasks

    if not config.step_mix:
        return generate_tasks(
            "train",
            config.train_problems,
            seed=config.seed,
            min_steps=config.min_steps,
            max_steps=config.max_steps,
        )
    tasks = [
        task
        for steps, share in zip(range(config.min_steps, config.max_steps + 1), config.step_mix, strict=True)
        for task in generate_tasks(
            "train", round(share * config.train_problems), seed=config.seed, steps=steps
        )
    ]
    random.Random(f"tiny-step-mix/{config.seed}").shuffle(tasks)
    return tasks


def _with_thinking(tasks, prompts: list[str], solutions: list[str], config: TinyModelConfig):
    """The warm-start examples with a `thinking_fraction` share (seeded choice) in the thinking format."""
    from selfimprove.knowledge.graph import KnowledgeGraph
    from selfimprove.knowledge.thinking_data import thinking_examples

    rng = random.Random(f"tiny-thinking/{config.seed}")
    chosen = sorted(rng.sample(range(len(tasks)), round(config.thinking_fraction * len(tasks))))
    graph = KnowledgeGraph.build(tasks[:THINKING_GRAPH_TASKS])
    thinking = thinking_examples(
        [tasks[i] for i in chosen],
        [prompts[i] for i in chosen],
        graph,
        reflect_fraction=config.reflect_fraction,
        seed=config.seed,
        max_chars=config.max_reflect_chars,
        confirm_fraction=config.confirm_fraction,
        work=config.thinking_work,
        named=config.thinking_named_plan,
    )
    prompts, solutions = list(prompts), list(solutions)
    for i, (prompt, completion) in zip(chosen, thinking, strict=True):
        prompts[i], solutions[i] = prompt, completion
    return prompts, solutions


def _with_solution_work(prompts: list[str], solutions: list[str]) -> tuple[list[str], list[str]]:
    """Every annotated step with its place-value work inline (`work.inline_work`), in the solutions and in
    the prompts: a reflection example's earlier attempt sits in its prompt and must look like the model's
    own rounds, which carry work. A question prompt has no annotation and comes back unchanged."""
    from selfimprove.knowledge.work import inline_work

    return [inline_work(p) for p in prompts], [inline_work(s) for s in solutions]


def build_tiny_model(
    preset: str | TinyModelConfig = "tiny",
    *,
    cache_dir: str | Path | None = None,
    progress: ProgressFn | None = None,
) -> Path:
    """Build (or reuse from cache) the tiny model; returns the folder that `from_pretrained` loads."""
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
    tasks = _warm_start_tasks(config)
    prompts = [format_prompt(recipe, t) for t in tasks]
    solutions = [t.solution or "" for t in tasks]
    if config.thinking_fraction > 0:
        prompts, solutions = _with_thinking(tasks, prompts, solutions, config)

    corpus = [p + s for p, s in zip(prompts[: config.tokenizer_corpus], solutions, strict=False)]
    tokenizer = train_tokenizer(corpus, config.vocab_size)
    model = make_model(config, tokenizer, seed=config.seed)
    n_params = sum(p.numel() for p in model.parameters())
    logger.info("tiny model %s: %d parameters, vocabulary %d", name, n_params, len(tokenizer))

    if config.solution_work:
        # after the tokenizer: the work adds digits and operators only, which are single tokens already
        prompts, solutions = _with_solution_work(prompts, solutions)
    examples = encode_examples(prompts, solutions, tokenizer)
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
