"""Training data: ids with exact prompt/completion boundaries, per-token span weights, length-bucketed steps.

Prompt and completion are tokenised separately and their ids concatenated, exactly as the policy sees them
when it generates (prompt ids, then sampled ids): the prompt with the tokenizer's special tokens (BOS if it
has one), the completion without, then the end token when the record says the completion ends the
sequence. Never a second BOS or EOS.

Steps are planned by length: each epoch shuffles the examples with a torch.Generator, sorts them by length
within mega-batches of 50 optimizer steps (as transformers' `group_by_length`), and shuffles the resulting
steps. Similar lengths share a micro-batch, so little compute goes to padding, while the order stays random.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from selfimprove.records import PreferencePair

logger = logging.getLogger(__name__)

MEGABATCH_STEPS = 50  # optimizer steps per length-sorted mega-batch


@dataclass(frozen=True)
class TokenizedPair:
    """A preference pair as ids; `*_weights` weigh each completion token in the loss (1.0 unless masked)."""

    index: int  # position in the caller's pair list
    prompt_ids: tuple[int, ...]
    chosen_ids: tuple[int, ...]
    rejected_ids: tuple[int, ...]
    chosen_weights: tuple[float, ...]
    rejected_weights: tuple[float, ...]

    @property
    def num_tokens(self) -> int:
        """Tokens of prompt+chosen plus prompt+rejected: the work a plain (unshared) forward does."""
        return 2 * len(self.prompt_ids) + len(self.chosen_ids) + len(self.rejected_ids)


@dataclass(frozen=True)
class TokenizedExample:
    """A supervised example as ids; the loss covers the completion tokens, weighted."""

    index: int
    prompt_ids: tuple[int, ...]
    completion_ids: tuple[int, ...]
    weights: tuple[float, ...]

    @property
    def num_tokens(self) -> int:
        return len(self.prompt_ids) + len(self.completion_ids)


# ---------------------------------------------------------------------------------------------------------
# tokenisation


def encode_prompts(tokenizer, prompts: Sequence[str]) -> list[list[int]]:
    """Prompt ids with the tokenizer's special tokens (BOS if any), never doubled, never ending in EOS."""
    encoded = tokenizer(list(prompts), add_special_tokens=True)["input_ids"]
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    out = []
    for text, ids in zip(prompts, encoded, strict=True):
        ids = list(ids)
        if bos is not None and len(ids) >= 2 and ids[0] == bos and ids[1] == bos:
            ids = ids[1:]  # the text already began with the BOS string (e.g. a rendered chat template)
        if eos is not None and ids and ids[-1] == eos and not text.endswith(tokenizer.eos_token):
            ids = ids[:-1]  # tokenizers configured to append EOS to every sequence
        out.append(ids)
    return out


def encode_completions(
    tokenizer,
    prompts: Sequence[str],
    completions: Sequence[str],
    eos_flags: Sequence[bool],
    mask_spans: Sequence[tuple[str, str, float]] = (),
) -> list[tuple[list[int], list[float]]]:
    """(ids, weights) per completion: no special tokens added, the end token appended where the flag says.

    A completion token's weight is the product of the weights of the mask spans whose content it starts in.
    Spans are found in prompt + completion, so a completion that continues a `<|thinking|>` block opened in
    the prompt is inside that span. The appended end token always has weight 1.
    """
    eos = tokenizer.eos_token_id
    if eos is None and any(eos_flags):
        raise ValueError(
            "the tokenizer has no eos_token, so a completion cannot be ended (chosen_eos/rejected_eos)"
        )
    encoding = tokenizer(list(completions), add_special_tokens=False, return_offsets_mapping=bool(mask_spans))
    out = []
    for row, (prompt, text, add_eos) in enumerate(zip(prompts, completions, eos_flags, strict=True)):
        ids = list(encoding["input_ids"][row])
        if mask_spans:
            regions = [(w, region) for o, c, w in mask_spans for region in _span_regions(prompt + text, o, c)]
            weights = [
                _weight_at(len(prompt) + start, regions) for start, _ in encoding["offset_mapping"][row]
            ]
        else:
            weights = [1.0] * len(ids)
        if add_eos and (not ids or ids[-1] != eos):
            ids.append(eos)
            weights.append(1.0)
        out.append((ids, weights))
    return out


def _span_regions(text: str, open_tag: str, close_tag: str) -> list[tuple[int, int]]:
    """Character ranges strictly between open and close tags; an unclosed tag runs to the end of the text."""
    regions, pos = [], 0
    while (start := text.find(open_tag, pos)) >= 0:
        content = start + len(open_tag)
        end = text.find(close_tag, content)
        if end < 0:
            regions.append((content, len(text)))
            break
        regions.append((content, end))
        pos = end + len(close_tag)
    return regions


def _weight_at(char: int, regions: Sequence[tuple[float, tuple[int, int]]]) -> float:
    weight = 1.0
    for span_weight, (start, end) in regions:
        if start <= char < end:
            weight *= span_weight
    return weight


def _fit(prompt: list[int], completions: list[list[int]], max_length: int, bos: int | None) -> int:
    """Cut `prompt` in place from the left (keeping a leading BOS) so that prompt + longest completion fits.

    Returns how many tokens each completion may keep: all of them unless even a one-token prompt leaves no
    room, in which case completions are cut from the right.
    """
    longest = max(len(c) for c in completions)
    if len(prompt) + longest <= max_length:
        return longest
    head = 1 if bos is not None and prompt[0] == bos else 0
    room = max(max_length - longest, head + 1)  # the first completion token needs one token of context
    prompt[head:] = prompt[len(prompt) - (room - head) :]
    return max_length - len(prompt)


def tokenize_pairs(
    tokenizer,
    pairs: Sequence[PreferencePair],
    *,
    max_length: int,
    mask_spans: Sequence[tuple[str, str, float]] = (),
) -> list[TokenizedPair]:
    """Tokenise preference pairs; a pair that cannot train (no prompt token, or an empty side) is dropped."""
    if mask_spans and not getattr(tokenizer, "is_fast", False):
        raise ValueError("mask_spans needs a fast tokenizer (character offsets); this tokenizer is not fast")
    prompts = [p.prompt for p in pairs]
    prompt_ids = encode_prompts(tokenizer, prompts)
    chosen = encode_completions(
        tokenizer, prompts, [p.chosen for p in pairs], [p.chosen_eos for p in pairs], mask_spans
    )
    rejected = encode_completions(
        tokenizer, prompts, [p.rejected for p in pairs], [p.rejected_eos for p in pairs], mask_spans
    )
    out, skipped, truncated = [], [], 0
    for i, (prompt, (c_ids, c_w), (r_ids, r_w)) in enumerate(zip(prompt_ids, chosen, rejected, strict=True)):
        if not prompt or not c_ids or not r_ids:
            skipped.append(i)
            continue
        truncated += len(prompt) + max(len(c_ids), len(r_ids)) > max_length
        keep = _fit(prompt, [c_ids, r_ids], max_length, tokenizer.bos_token_id)
        out.append(
            TokenizedPair(
                index=i,
                prompt_ids=tuple(prompt),
                chosen_ids=tuple(c_ids[:keep]),
                rejected_ids=tuple(r_ids[:keep]),
                chosen_weights=tuple(c_w[:keep]),
                rejected_weights=tuple(r_w[:keep]),
            )
        )
    _report(len(pairs), skipped, truncated, max_length, "pair")
    return out


def tokenize_examples(
    tokenizer,
    examples: Sequence[tuple[str, str]],
    *,
    max_length: int,
    mask_spans: Sequence[tuple[str, str, float]] = (),
) -> list[TokenizedExample]:
    """Tokenise (prompt, completion) examples for SFT; the completion always ends with the end token."""
    if mask_spans and not getattr(tokenizer, "is_fast", False):
        raise ValueError("mask_spans needs a fast tokenizer (character offsets); this tokenizer is not fast")
    prompts = [p for p, _ in examples]
    prompt_ids = encode_prompts(tokenizer, prompts)
    completions = encode_completions(
        tokenizer, prompts, [c for _, c in examples], [True] * len(examples), mask_spans
    )
    out, skipped, truncated = [], [], 0
    for i, (prompt, (ids, weights)) in enumerate(zip(prompt_ids, completions, strict=True)):
        if not prompt or not ids:
            skipped.append(i)
            continue
        truncated += len(prompt) + len(ids) > max_length
        keep = _fit(prompt, [ids], max_length, tokenizer.bos_token_id)
        out.append(TokenizedExample(i, tuple(prompt), tuple(ids[:keep]), tuple(weights[:keep])))
    _report(len(examples), skipped, truncated, max_length, "example")
    return out


def _report(total: int, skipped: list[int], truncated: int, max_length: int, what: str) -> None:
    if skipped:
        logger.warning(
            "skipped %d of %d %ss with nothing to train on (empty prompt and no BOS token, or empty side); "
            "first indices: %s",
            len(skipped),
            total,
            what,
            skipped[:5],
        )
    if truncated:
        logger.warning("cut %d of %d %ss to max_length %d", truncated, total, what, max_length)


# ---------------------------------------------------------------------------------------------------------
# step planning


def plan_epoch(
    lengths: Sequence[int], *, batch_size: int, grad_accum: int, generator: torch.Generator
) -> list[list[list[int]]]:
    """One epoch of optimizer steps, each a list of micro-batches of example indices.

    A step holds batch_size * grad_accum examples (the last step of an epoch may hold fewer), so the same
    seed and the same effective batch give the same steps whatever the split into micro-batches.
    """
    per_step = batch_size * grad_accum
    order = torch.randperm(len(lengths), generator=generator).tolist()
    steps: list[list[int]] = []
    mega = per_step * MEGABATCH_STEPS
    for start in range(0, len(order), mega):
        # longest first within the mega-batch; ties keep the shuffled order (sorted is stable)
        chunk = sorted(order[start : start + mega], key=lambda i: -lengths[i])
        steps.extend(chunk[s : s + per_step] for s in range(0, len(chunk), per_step))
    shuffled = torch.randperm(len(steps), generator=generator).tolist()
    return [[steps[k][m : m + batch_size] for m in range(0, len(steps[k]), batch_size)] for k in shuffled]


def steps_per_epoch(n: int, *, batch_size: int, grad_accum: int) -> int:
    per_step = batch_size * grad_accum
    mega = per_step * MEGABATCH_STEPS
    full, rest = divmod(n, mega)
    return full * MEGABATCH_STEPS + -(-rest // per_step)
