"""Tokenisation boundaries, span weights, truncation and length-bucketed step plans of the trainer's data."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from selfimprove.records import PreferencePair
from selfimprove.train.data import (
    MEGABATCH_STEPS,
    encode_completions,
    encode_prompts,
    plan_epoch,
    steps_per_epoch,
    tokenize_examples,
    tokenize_pairs,
)

PROMPT = "Question: Tom has 3 apples and buys 4 more. How many apples does he have?\nAnswer:\n"


@pytest.fixture(scope="module")
def tokenizer(tiny_lm_path: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_lm_path)


@pytest.fixture
def bos_tokenizer(tiny_lm_path: Path):
    """The tiny tokenizer made to prepend a BOS token (`<|reflect|>` stands in for one) to every sequence."""
    from tokenizers.processors import TemplateProcessing
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_lm_path)
    bos_id = tok.convert_tokens_to_ids("<|reflect|>")
    tok._tokenizer.post_processor = TemplateProcessing(
        single="<|reflect|> $A", pair="<|reflect|> $A $B", special_tokens=[("<|reflect|>", bos_id)]
    )
    tok.bos_token = "<|reflect|>"
    assert tok("hi")["input_ids"][0] == bos_id
    return tok


def _ids(tok, text: str) -> list[int]:
    return tok(text, add_special_tokens=False)["input_ids"]


def test_prompt_and_completion_are_tokenised_apart_and_concatenated(tokenizer) -> None:
    pair = PreferencePair(PROMPT, "He has 3+4=7 apples.\n#### 7", "He has 3+4=8 apples.\n#### 8")
    (item,) = tokenize_pairs(tokenizer, [pair], max_length=512)
    eos = tokenizer.eos_token_id
    assert list(item.prompt_ids) == _ids(tokenizer, PROMPT)  # no BOS: this tokenizer has none
    assert list(item.chosen_ids) == [*_ids(tokenizer, pair.chosen), eos]
    assert list(item.rejected_ids) == [*_ids(tokenizer, pair.rejected), eos]
    assert item.chosen_weights == (1.0,) * len(item.chosen_ids)
    assert item.num_tokens == 2 * len(item.prompt_ids) + len(item.chosen_ids) + len(item.rejected_ids)


def test_eos_follows_the_flags_and_is_never_doubled(tokenizer) -> None:
    eos = tokenizer.eos_token_id
    step = PreferencePair(PROMPT, "He has 3+4=7 apples.\n", "He has 3+4=8 apples.\n", chosen_eos=False)
    (item,) = tokenize_pairs(tokenizer, [step], max_length=512)
    assert item.chosen_ids[-1] != eos and item.rejected_ids[-1] == eos
    ended = PreferencePair(PROMPT, "#### 7<|end|>", "#### 8")
    (item,) = tokenize_pairs(tokenizer, [ended], max_length=512)
    assert list(item.chosen_ids) == [*_ids(tokenizer, "#### 7"), eos]
    assert item.chosen_ids.count(eos) == 1


def test_bos_once_on_the_prompt_and_never_on_the_completion(bos_tokenizer) -> None:
    bos = bos_tokenizer.bos_token_id
    prompts = encode_prompts(bos_tokenizer, [PROMPT, "<|reflect|>" + PROMPT])
    assert prompts[0] == [bos, *_ids(bos_tokenizer, PROMPT)]
    assert prompts[1] == prompts[0]  # a prompt that already starts with the BOS string gets no second one
    (item,) = tokenize_pairs(bos_tokenizer, [PreferencePair(PROMPT, "#### 7", "#### 8")], max_length=512)
    assert item.prompt_ids.count(bos) == 1 and bos not in item.chosen_ids


def test_mask_spans_weight_the_tokens_between_the_tags(tokenizer) -> None:
    text = "<|thinking|>3+4 is 7<|/thinking|>#### 7"
    ((ids, weights),) = encode_completions(
        tokenizer, [PROMPT], [text], [True], [("<|thinking|>", "<|/thinking|>", 0.0)]
    )
    masked = [i for i, w in zip(ids, weights, strict=True) if w == 0.0]
    kept = [i for i, w in zip(ids, weights, strict=True) if w == 1.0]
    assert tokenizer.decode(masked) == "3+4 is 7"
    assert tokenizer.decode(kept) == "<|thinking|><|/thinking|>#### 7<|end|>"
    ((_, half),) = encode_completions(
        tokenizer, [PROMPT], [text], [True], [("<|thinking|>", "<|/thinking|>", 0.5)]
    )
    assert sorted(set(half)) == [0.5, 1.0]


def test_a_span_opened_in_the_prompt_covers_the_completion(tokenizer) -> None:
    prompt = PROMPT + "<|thinking|>first 3+4"
    ((ids, weights),) = encode_completions(
        tokenizer, [prompt], [" is 7<|/thinking|>#### 7"], [False], [("<|thinking|>", "<|/thinking|>", 0.0)]
    )
    assert tokenizer.decode([i for i, w in zip(ids, weights, strict=True) if w == 0.0]) == " is 7"
    assert weights[-1] == 1.0


def test_unclosed_span_runs_to_the_end(tokenizer) -> None:
    ((ids, weights),) = encode_completions(
        tokenizer, [PROMPT], ["#### 7 <|reflect|>maybe 8"], [True], [("<|reflect|>", "<|/reflect|>", 0.0)]
    )
    assert tokenizer.decode([i for i, w in zip(ids, weights, strict=True) if w == 0.0]) == "maybe 8"
    assert weights[-1] == 1.0  # the appended end token


def test_truncation_cuts_the_prompt_from_the_left(tokenizer) -> None:
    pair = PreferencePair(PROMPT * 3, "He has 3+4=7 apples.\n#### 7", "#### 8")
    (full,) = tokenize_pairs(tokenizer, [pair], max_length=4096)
    (cut,) = tokenize_pairs(tokenizer, [pair], max_length=40)
    assert cut.chosen_ids == full.chosen_ids and cut.rejected_ids == full.rejected_ids
    assert len(cut.prompt_ids) + len(cut.chosen_ids) == 40
    assert cut.prompt_ids == full.prompt_ids[-len(cut.prompt_ids) :]
    # a completion longer than max_length keeps one prompt token and loses its tail
    (tiny,) = tokenize_pairs(tokenizer, [pair], max_length=5)
    assert len(tiny.prompt_ids) == 1 and len(tiny.chosen_ids) == 4 and tiny.chosen_ids == full.chosen_ids[:4]


def test_pairs_without_trainable_tokens_are_skipped(tokenizer) -> None:
    pairs = [
        PreferencePair(PROMPT, "", "#### 8", chosen_eos=False),
        PreferencePair(
            "", "#### 7", "#### 8"
        ),  # no prompt token and no BOS: nothing predicts the first token
        PreferencePair(PROMPT, "#### 7", "#### 8"),
    ]
    items = tokenize_pairs(tokenizer, pairs, max_length=512)
    assert [item.index for item in items] == [2]


def test_sft_examples_always_end(tokenizer) -> None:
    (item,) = tokenize_examples(tokenizer, [(PROMPT, "#### 7")], max_length=512)
    assert list(item.completion_ids) == [*_ids(tokenizer, "#### 7"), tokenizer.eos_token_id]


def test_mask_spans_need_a_fast_tokenizer() -> None:
    class Slow:
        is_fast = False

    with pytest.raises(ValueError, match="fast tokenizer"):
        tokenize_pairs(
            Slow(), [PreferencePair("a", "b", "c")], max_length=8, mask_spans=[("<a>", "</a>", 0.0)]
        )


def test_plan_epoch_covers_every_example_once_in_buckets() -> None:
    lengths = [int(x) for x in torch.randint(5, 300, (1000,), generator=torch.Generator().manual_seed(1))]
    plan = plan_epoch(lengths, batch_size=4, grad_accum=2, generator=torch.Generator().manual_seed(0))
    flat = [i for step in plan for micro in step for i in micro]
    assert sorted(flat) == list(range(1000))
    assert len(plan) == steps_per_epoch(1000, batch_size=4, grad_accum=2) == 125
    assert all(len(micro) == 4 for step in plan for micro in step) and all(len(step) == 2 for step in plan)
    # sorting within mega-batches of 50 steps cuts padding: compare to the same steps drawn at random
    padding = sum(
        max(lengths[i] for i in micro) * len(micro) - sum(lengths[i] for i in micro)
        for s in plan
        for micro in s
    )
    order = torch.randperm(1000, generator=torch.Generator().manual_seed(2)).tolist()
    random_padding = sum(
        max(lengths[i] for i in order[k : k + 4]) * 4 - sum(lengths[i] for i in order[k : k + 4])
        for k in range(0, 1000, 4)
    )
    assert padding < random_padding / 5
    assert MEGABATCH_STEPS == 50


def test_plan_is_seeded_and_independent_of_the_micro_batch_split() -> None:
    lengths = list(range(3, 40))
    a = plan_epoch(lengths, batch_size=1, grad_accum=4, generator=torch.Generator().manual_seed(7))
    b = plan_epoch(lengths, batch_size=4, grad_accum=1, generator=torch.Generator().manual_seed(7))
    c = plan_epoch(lengths, batch_size=4, grad_accum=1, generator=torch.Generator().manual_seed(8))
    assert [[i for m in step for i in m] for step in a] == [[i for m in step for i in m] for step in b]
    assert a != c and b != c
    assert len(b) == 10 and sorted(len(step[0]) for step in b) == [1] + [4] * 9
