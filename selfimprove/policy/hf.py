"""The transformers backend of the Policy protocol: a hand-written batched decode loop over a KV cache.

`model.generate` would do the decoding, but not the way searches need it. This loop gives, per call:
a `torch.Generator` seeded from `seed` (same seed => same samples, no global RNG); stop strings matched
per row on the row's decoded text (a stop string may span tokens); the exact summed log-probability of
the generated tokens under the model (log-softmax of the raw logits, before temperature and top-p);
finished rows dropped from the batch (the cache keeps only live rows), so one long row does not make
every short row pay; and one prefill per distinct prompt, shared by its n samples through the cache.

Prompts are encoded with the tokenizer's special tokens (BOS where it has one) and left-padded, with
position ids counted from each row's first real token; completions are encoded without special tokens.
Rows are sorted by prompt length so that padding is small, split into batches that fit memory, and
returned in the caller's order.
"""

from __future__ import annotations

import inspect
import logging
import math
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from selfimprove.policy.base import Completion

logger = logging.getLogger(__name__)

# Rows per batch when chosen automatically. On a CPU decode throughput stops growing around 64 rows for
# the tiny model (docs/benchmarks.md, "Generation"); a GPU keeps gaining until memory runs out.
_MAX_ROWS_CPU = 64
_MAX_ROWS_CUDA = 512
# Memory the automatic batch size may plan for: a fixed budget on a CPU, a fraction of free memory on GPU.
_CPU_MEMORY_BUDGET = 2 << 30
_CUDA_FREE_FRACTION = 0.6
# Top-p looks for the nucleus among this many most probable tokens before sorting the whole vocabulary.
_TOP_P_CANDIDATES = 64


@dataclass
class _Row:
    """Decoding state of one sequence: tokens so far, their log-prob, and the incremental detokenizer."""

    ids: list[int] = field(default_factory=list)
    logprob: float = 0.0
    text: str = ""
    prefix_offset: int = 0  # incremental detokenization window (as in text-generation-inference)
    read_offset: int = 0
    finish_reason: str | None = None
    stop: str | None = None


class _PreallocatedLayer(DynamicLayer):
    """A DynamicLayer that appends into a preallocated buffer instead of concatenating.

    DynamicLayer grows by `torch.cat`, copying the layer's whole cache at every decoded token; for the tiny
    model at batch 64 those copies took a quarter of the decode time. This layer writes each new token in
    place and gives attention a view of the filled part. The caller knows the final length (prompt width
    plus new tokens), so the buffer never needs to grow.
    """

    def __init__(self, capacity: int) -> None:
        super().__init__()
        self.capacity = capacity
        self.length = 0

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.device = key_states.device
        batch, heads, _, _ = key_states.shape  # (B, H, T, D)
        self.key_buffer = key_states.new_empty((batch, heads, self.capacity, key_states.shape[-1]))
        self.value_buffer = value_states.new_empty((batch, heads, self.capacity, value_states.shape[-1]))
        self.is_initialized = True

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        end = self.length + key_states.shape[-2]
        if end > self.capacity:
            raise RuntimeError(f"a cache preallocated for {self.capacity} positions was asked to hold {end}")
        self.key_buffer[:, :, self.length : end] = key_states
        self.value_buffer[:, :, self.length : end] = value_states
        self.length = end
        self.keys, self.values = self.key_buffer[:, :, :end], self.value_buffer[:, :, :end]
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.length

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if self.is_initialized:
            self.key_buffer, self.value_buffer = self.key_buffer[indices], self.value_buffer[indices]
            self.keys = self.key_buffer[:, :, : self.length]
            self.values = self.value_buffer[:, :, : self.length]


def _new_cache(config, capacity: int) -> DynamicCache:
    """A DynamicCache for `config` whose full-attention layers are preallocated for `capacity` positions
    (other layer kinds, e.g. sliding-window ones, keep their own implementation)."""
    cache = DynamicCache(config=config)
    cache.layers = [
        _PreallocatedLayer(capacity) if type(layer) is DynamicLayer else layer for layer in cache.layers
    ]
    return cache


def _pick_device(device: str | torch.device) -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _pick_dtype(dtype: str | torch.dtype, device: torch.device) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    allowed = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if dtype not in allowed:
        raise ValueError(f"dtype must be 'auto' or one of {sorted(allowed)}, got {dtype!r}")
    return allowed[dtype]


def _sample(probs: torch.Tensor, top_p: float, generator: torch.Generator) -> torch.Tensor:
    """One token per row of `probs` (B, V); with top_p < 1 only from the nucleus (Holtzman et al. 2020,
    https://arxiv.org/abs/1904.09751): the most probable tokens whose mass first reaches top_p.

    The nucleus is looked for among the top _TOP_P_CANDIDATES tokens, and the full vocabulary is sorted
    only when they do not reach top_p: on a CPU a full sort of 64 x 720 probabilities cost more than the
    tiny model's whole decode step.
    """
    if top_p >= 1:
        return _inverse_cdf(probs, generator)
    candidates = min(_TOP_P_CANDIDATES, probs.shape[-1])
    ranked, ids = probs.topk(candidates, dim=-1)  # (B, K), descending
    if candidates < probs.shape[-1] and not bool((ranked.sum(-1) >= top_p).all()):
        ranked, ids = probs.sort(dim=-1, descending=True)  # (B, V)
    # drop a token when the mass before it already reaches top_p; the most probable token always stays
    ranked = ranked.masked_fill(ranked.cumsum(dim=-1) - ranked >= top_p, 0.0)
    return ids.gather(-1, _inverse_cdf(ranked, generator)[:, None]).squeeze(-1)


def _inverse_cdf(weights: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Index i of each row of `weights` (B, N) drawn with probability weights[i] / sum(weights).

    One uniform number per row against the cumulative sum: the distribution of torch.multinomial at a
    tenth of its cost on a CPU. The draw is kept strictly below the total, so the first index whose
    cumulative sum exceeds it always has positive weight.
    """
    cdf = weights.double().cumsum(dim=-1)  # (B, N)
    total = cdf[:, -1:]  # (B, 1)
    uniform = torch.rand(total.shape, generator=generator, device=weights.device, dtype=cdf.dtype)
    draw = torch.minimum(uniform * total, torch.nextafter(total, torch.zeros_like(total)))
    return torch.searchsorted(cdf, draw, right=True).squeeze(-1)


def _distinct(row_ids: list[list[int]], row_prompts: list[str]) -> tuple[list[list[int]], list[int]]:
    """The distinct prompts' token ids, and for each row the index of its prompt among them."""
    index: dict[str, int] = {}
    unique_ids: list[list[int]] = []
    row_prompt = []
    for ids, text in zip(row_ids, row_prompts, strict=True):
        if text not in index:
            index[text] = len(unique_ids)
            unique_ids.append(ids)
        row_prompt.append(index[text])
    return unique_ids, row_prompt


class HFPolicy:
    """A Policy over any transformers causal LM and its tokenizer (`.model` and `.tokenizer` are public)."""

    def __init__(
        self, model, tokenizer, *, batch_size: int | None = None, share_prefill: bool = True
    ) -> None:
        """`batch_size` rows per forward (None: chosen to fit memory). `share_prefill=False` prefills every
        row separately, even rows of the same prompt; it exists to measure what sharing saves."""
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer or None, got {batch_size}")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.share_prefill = share_prefill
        self.device = next(model.parameters()).device
        eos = {tokenizer.eos_token_id}
        configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
        eos.update(configured if isinstance(configured, list) else [configured])
        self.eos_ids = frozenset(int(t) for t in eos if t is not None)
        pad = tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else min(self.eos_ids, default=0))
        parameters = inspect.signature(model.forward).parameters
        # transformers 5 renamed `past_key_values` to `cache`; support both
        self._cache_kwarg = "cache" if "cache" in parameters else "past_key_values"
        self._logits_to_keep = "logits_to_keep" in parameters
        # sizes for the automatic batch size (attribute names vary across architectures)
        text_config = model.config.get_text_config()
        hidden = int(text_config.hidden_size)
        self._vocab = int(text_config.vocab_size)
        self._heads = int(text_config.num_attention_heads)
        head_dim = getattr(text_config, "head_dim", None) or hidden // self._heads
        kv_heads = getattr(text_config, "num_key_value_heads", None) or self._heads
        intermediate = getattr(text_config, "intermediate_size", None) or 4 * hidden
        elem = torch.finfo(next(model.parameters()).dtype).bits // 8
        self._kv_bytes_per_token = 2 * text_config.num_hidden_layers * kv_heads * head_dim * elem
        self._hidden_bytes_per_token = (4 * hidden + 2 * intermediate) * elem

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        *,
        device: str | torch.device = "auto",
        dtype: str | torch.dtype = "auto",
        batch_size: int | None = None,
    ) -> HFPolicy:
        """Load a causal LM and its tokenizer from a local folder; device auto = CUDA if available, else CPU;
        dtype auto = bfloat16 on GPU, float32 on CPU."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if not Path(path).is_dir():
            raise ValueError(f"model path {str(path)!r} is not a folder (expected a save_pretrained output)")
        torch_device = _pick_device(device)
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=_pick_dtype(dtype, torch_device))
        return cls(model.to(torch_device), tokenizer, batch_size=batch_size)

    # -----------------------------------------------------------------------------------------------------
    # tokenization

    def encode_prompts(self, prompts: Sequence[str]) -> list[list[int]]:
        """Prompt token ids, with the tokenizer's special tokens (BOS where it has one)."""
        ids = self.tokenizer(list(prompts), add_special_tokens=True)["input_ids"] if prompts else []
        for i, row in enumerate(ids):
            if not row:
                raise ValueError(
                    f"prompt {i} ({prompts[i]!r}) encodes to no tokens and the tokenizer adds no BOS"
                )
        return ids

    def encode_completions(self, completions: Sequence[str]) -> list[list[int]]:
        """Completion token ids, without special tokens (they continue a prompt)."""
        return self.tokenizer(list(completions), add_special_tokens=False)["input_ids"] if completions else []

    def num_tokens(self, text: str) -> int:
        """Number of tokens of `text` as a completion (no special tokens)."""
        return len(self.encode_completions([text])[0])

    def _decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=False, clean_up_tokenization_spaces=False)

    # -----------------------------------------------------------------------------------------------------
    # batching

    def rows_per_batch(self, seq_len: int, scored_tokens: int = 1) -> int:
        """Rows per forward for sequences of `seq_len` tokens with `scored_tokens` positions of logits each:
        the user's batch size, else as many rows as fit the memory budget (KV cache, activations, logits)."""
        if self.batch_size is not None:
            return self.batch_size
        row_bytes = (
            seq_len * (self._kv_bytes_per_token + self._hidden_bytes_per_token)
            + 3 * 4 * self._vocab * scored_tokens  # fp32 logits, log-softmax and probabilities
        )
        if self.device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(self.device)
            budget, cap = int(free * _CUDA_FREE_FRACTION), _MAX_ROWS_CUDA
        else:
            budget, cap = _CPU_MEMORY_BUDGET, _MAX_ROWS_CPU
            row_bytes += 4 * self._heads * seq_len * seq_len  # CPU attention with a mask holds fp32 scores
        return max(1, min(cap, budget // max(1, row_bytes)))

    def _batches(self, order: list, size: Callable[[object], tuple[int, int]]) -> Iterator[list]:
        """Consecutive slices of `order` that fit memory; `size(row)` is (sequence length, scored tokens)."""
        start = 0
        while start < len(order):
            batch = order[start : start + self.rows_per_batch(*size(order[start]))]
            # the memory of a batch is set by its longest row: shrink once to fit it (shrinking only helps)
            seq_len, scored = (max(values) for values in zip(*map(size, batch), strict=True))
            batch = batch[: self.rows_per_batch(seq_len, scored_tokens=scored)]
            start += len(batch)
            yield batch

    def _forward(self, input_ids, attention_mask, position_ids, cache, logits_to_keep: int) -> torch.Tensor:
        """Logits (B, logits_to_keep, V) in float32 of the last `logits_to_keep` positions."""
        kwargs = {self._cache_kwarg: cache, "use_cache": cache is not None}
        if self._logits_to_keep:
            kwargs["logits_to_keep"] = logits_to_keep
        out = self.model(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, **kwargs
        )
        return out.logits[:, -logits_to_keep:, :].float()

    def _prefill(self, prompt_ids: Sequence[Sequence[int]], row_prompt: Sequence[int], extra: int):
        """Run the distinct prompts once, then give each row its prompt's cache, with room for `extra` tokens.

        Returns (cache, last-position logits (B, V), attention mask (B, W), next position (B,), padded).
        """
        width = max(len(ids) for ids in prompt_ids)
        input_ids = torch.full((len(prompt_ids), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(prompt_ids), width), dtype=torch.long)
        for i, ids in enumerate(prompt_ids):  # left padding: every prompt ends at the last column
            input_ids[i, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
            mask[i, width - len(ids) :] = 1
        input_ids, mask = input_ids.to(self.device), mask.to(self.device)
        padded = bool((mask == 0).any())
        positions = (mask.cumsum(-1) - 1).clamp(min=0)  # (P, W): real tokens count from 0
        cache = _new_cache(self.model.config, width + extra)
        logits = self._forward(input_ids, mask if padded else None, positions, cache, 1)[:, -1, :]  # (P, V)
        if list(row_prompt) != list(range(len(prompt_ids))):
            index = torch.tensor(row_prompt, dtype=torch.long, device=self.device)
            cache.batch_select_indices(index)
            logits, mask = logits[index], mask[index]
        return cache, logits, mask, mask.sum(-1), padded

    # -----------------------------------------------------------------------------------------------------
    # generation

    def generate(
        self,
        prompts: Sequence[str],
        *,
        n: int = 1,
        max_new_tokens: int = 256,
        temperature: float = 1.0,
        top_p: float = 1.0,
        stop: Sequence[str] = (),
        seed: int | None = None,
    ) -> list[list[Completion]]:
        """For each prompt, `n` completions (temperature 0 is greedy; top_p is nucleus sampling)."""
        if isinstance(prompts, str):
            raise TypeError("prompts must be a sequence of strings, got a single string")
        if isinstance(stop, str):
            raise TypeError(f"stop must be a sequence of strings, got the string {stop!r}")
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        if max_new_tokens < 0:
            raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
        if not temperature >= 0:
            raise ValueError(f"temperature must be >= 0 (0 is greedy), got {temperature}")
        if not 0 < top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {top_p}")
        if any(not isinstance(s, str) or not s for s in stop):
            raise ValueError(f"stop strings must be non-empty strings, got {list(stop)!r}")
        prompt_ids = self.encode_prompts(prompts)
        generator = torch.Generator(device=self.device)
        generator.manual_seed(seed if seed is not None else random.SystemRandom().getrandbits(63))

        # rows (prompt, sample) sorted by prompt length, so a batch holds prompts of similar length
        order = sorted(
            ((p, s) for p in range(len(prompts)) for s in range(n)), key=lambda r: len(prompt_ids[r[0]])
        )
        done: dict[tuple[int, int], Completion] = {}
        for batch in self._batches(order, lambda r: (len(prompt_ids[r[0]]) + max_new_tokens, 1)):
            completions = self._generate_batch(
                [prompt_ids[p] for p, _ in batch],
                [prompts[p] for p, _ in batch],
                max_new_tokens=max_new_tokens,
                temperature=temperature,
                top_p=top_p,
                stop=tuple(stop),
                generator=generator,
            )
            done.update(zip(batch, completions, strict=True))
        return [[done[p, s] for s in range(n)] for p in range(len(prompts))]

    @torch.inference_mode()
    def _generate_batch(
        self,
        row_ids: list[list[int]],
        row_prompts: list[str],
        *,
        max_new_tokens: int,
        temperature: float,
        top_p: float,
        stop: tuple[str, ...],
        generator: torch.Generator,
    ) -> list[Completion]:
        """Decode one batch of rows to completion; row i continues `row_ids[i]`."""
        if max_new_tokens == 0:
            return [Completion("", (), 0.0, "length") for _ in row_ids]
        # 1. prefill each distinct prompt once (rows of one prompt are adjacent after sorting)
        if self.share_prefill:
            unique_ids, row_prompt = _distinct(row_ids, row_prompts)
        else:
            unique_ids, row_prompt = row_ids, list(range(len(row_ids)))
        cache, logits, mask, positions, padded = self._prefill(unique_ids, row_prompt, max_new_tokens)

        rows = [_Row() for _ in row_ids]
        live = list(range(len(rows)))  # rows still decoding, in batch order
        longest_stop = max((len(s) for s in stop), default=0)
        for _ in range(max_new_tokens):
            # 2. choose the next token of every live row; its log-prob is under the raw logits
            logprobs = torch.log_softmax(logits, dim=-1)  # (B, V)
            if temperature == 0:
                tokens = logits.argmax(dim=-1)  # (B,)
            else:
                tokens = _sample(torch.softmax(logits / temperature, dim=-1), top_p, generator)
            token_logprobs = logprobs.gather(-1, tokens[:, None]).squeeze(-1)  # (B,)
            host_tokens, host_logprobs = tokens.tolist(), token_logprobs.double().tolist()

            # 3. append, and finish rows at the end token, a stop string or the length limit
            for r, token, logprob in zip(live, host_tokens, host_logprobs, strict=True):
                row = rows[r]
                if token in self.eos_ids:
                    row.finish_reason = "eos"
                    continue
                row.ids.append(token)
                row.logprob += logprob
                if stop and self._append_text(row, longest_stop, stop):
                    row.finish_reason = "stop"
                elif len(row.ids) == max_new_tokens:
                    row.finish_reason = "length"
            keep = [i for i, r in enumerate(live) if rows[r].finish_reason is None]
            if not keep:
                break
            # 4. drop finished rows from the batch, then feed every live row its new token
            if len(keep) < len(live):
                index = torch.tensor(keep, dtype=torch.long, device=self.device)
                cache.batch_select_indices(index)
                mask, positions, tokens = mask[index], positions[index], tokens[index]
                live = [live[i] for i in keep]
            if padded:
                mask = torch.cat([mask, mask.new_ones((len(live), 1))], dim=-1)  # (B, W + t + 1)
            logits = self._forward(tokens[:, None], mask if padded else None, positions[:, None], cache, 1)[
                :, -1
            ]
            positions = positions + 1
        return [self._completion(row, stop) for row in rows]

    def _append_text(self, row: _Row, longest_stop: int, stop: tuple[str, ...]) -> bool:
        """Extend the row's decoded text by its newest token; True when a stop string now appears in it.

        Decoding only a window of recent tokens keeps this O(1) per token; holding text back while it ends
        in an incomplete UTF-8 character (U+FFFD) keeps byte-level tokens that split a character correct.
        """
        prefix = self._decode(row.ids[row.prefix_offset : row.read_offset])
        window = self._decode(row.ids[row.prefix_offset :])
        if len(window) <= len(prefix) or window.endswith("\ufffd"):
            return False
        searched_from = max(0, len(row.text) - longest_stop + 1)
        row.text += window[len(prefix) :]
        row.prefix_offset, row.read_offset = row.read_offset, len(row.ids)
        hits = [(at, s) for s in stop if (at := row.text.find(s, searched_from)) >= 0]
        if hits:
            row.stop = min(hits)[1]
            return True
        return False

    def _completion(self, row: _Row, stop: tuple[str, ...]) -> Completion:
        """The finished row as a Completion: the full decode, cut before the first stop string if one hit."""
        text, matched = self._decode(row.ids), row.stop
        if row.finish_reason == "stop":
            hits = [(at, s) for s in stop if (at := text.find(s)) >= 0]
            if hits:
                at, matched = min(hits)
                text = text[:at]
            else:  # the windowed decode saw a stop the full decode does not: trust the windowed text
                text = row.text[: row.text.find(row.stop)]
        assert row.finish_reason is not None
        return Completion(text, tuple(row.ids), row.logprob, row.finish_reason, matched)

    # -----------------------------------------------------------------------------------------------------
    # scoring

    def logprobs(self, prompts: Sequence[str], completions: Sequence[str]) -> list[float]:
        """Summed log-probability of each completion given its prompt (prompt ids + completion ids)."""
        return [math.fsum(row) for row in self.token_logprobs(prompts, completions)]

    def token_logprobs(self, prompts: Sequence[str], completions: Sequence[str]) -> list[list[float]]:
        """Per-token log-probabilities of each completion given its prompt.

        Rows that share a prompt share its prefill: scoring k siblings of one search node costs one prompt
        forward plus k short completion forwards.
        """
        if isinstance(prompts, str) or isinstance(completions, str):
            raise TypeError("prompts and completions must be sequences of strings, not a single string")
        if len(prompts) != len(completions):
            raise ValueError(f"got {len(prompts)} prompts but {len(completions)} completions; they pair up")
        prompt_ids = self.encode_prompts(prompts)
        completion_ids = self.encode_completions(completions)
        results: list[list[float]] = [[] for _ in prompts]
        order = sorted(
            (i for i in range(len(prompts)) if completion_ids[i]),
            key=lambda i: (len(prompt_ids[i]), prompts[i], len(completion_ids[i])),
        )
        sizes = lambda i: (len(prompt_ids[i]) + len(completion_ids[i]), len(completion_ids[i]))  # noqa: E731
        for batch in self._batches(order, sizes):
            scored = self._score_batch(
                [prompt_ids[i] for i in batch],
                [prompts[i] for i in batch],
                [completion_ids[i] for i in batch],
            )
            for i, row in zip(batch, scored, strict=True):
                results[i] = row
        return results

    @torch.inference_mode()
    def _score_batch(
        self, row_ids: list[list[int]], row_prompts: list[str], completion_ids: list[list[int]]
    ) -> list[list[float]]:
        """Per-token log-probs of right-padded completions after left-padded prompts."""
        width = max(len(ids) for ids in completion_ids)
        unique_ids, row_prompt = _distinct(row_ids, row_prompts)
        cache, first_logits, mask, positions, _ = self._prefill(unique_ids, row_prompt, width)

        tokens = torch.full((len(row_ids), width), self.pad_id, dtype=torch.long)
        completion_mask = torch.zeros((len(row_ids), width), dtype=torch.long)
        for i, ids in enumerate(completion_ids):
            tokens[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
            completion_mask[i, : len(ids)] = 1
        tokens, completion_mask = tokens.to(self.device), completion_mask.to(self.device)
        logits = first_logits[:, None, :]  # (B, 1, V): predicts the first completion token
        if width > 1:
            full_mask = torch.cat([mask, completion_mask], dim=-1)  # (B, W + C)
            steps = torch.arange(width - 1, device=self.device)
            rest = self._forward(
                tokens[:, :-1], full_mask[:, :-1], positions[:, None] + steps, cache, width - 1
            )
            logits = torch.cat([logits, rest], dim=1)  # (B, C, V)
        picked = torch.log_softmax(logits, dim=-1).gather(-1, tokens[..., None]).squeeze(-1)  # (B, C)
        return [row[: len(ids)] for row, ids in zip(picked.double().tolist(), completion_ids, strict=True)]
