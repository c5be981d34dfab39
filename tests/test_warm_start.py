"""The tiny model's warm start: its data (plain and thinking), batching and encoding."""

from __future__ import annotations

import dataclasses
import random

import pytest

from selfimprove.policy.tiny import PRESETS, train_tokenizer
from selfimprove.policy.warm_start import encode_examples, length_bucketed_batches
from selfimprove.tasks.arith import generate_tasks
from selfimprove.tasks.recipe import format_prompt, load_recipe


@pytest.fixture(scope="module")
def setup():
    recipe = load_recipe("arith")
    tasks = generate_tasks("train", 400, seed=3, min_steps=1, max_steps=2)
    prompts = [format_prompt(recipe, t) for t in tasks]
    solutions = [t.solution or "" for t in tasks]
    tokenizer = train_tokenizer(
        [p + s for p, s in zip(prompts, solutions, strict=True)], PRESETS["test"].vocab_size
    )
    return tokenizer, encode_examples(prompts, solutions, tokenizer)


def test_encode_examples_matches_the_tokenizer(setup) -> None:
    tokenizer, examples = setup
    recipe = load_recipe("arith")
    task = generate_tasks("train", 400, seed=3, min_steps=1, max_steps=2)[5]
    prompt = tokenizer(format_prompt(recipe, task), add_special_tokens=False)["input_ids"]
    solution = tokenizer(task.solution, add_special_tokens=False)["input_ids"]
    assert examples[5] == (prompt + solution + [tokenizer.eos_token_id], len(prompt))


def test_bucketed_batches_cover_an_epoch_once() -> None:
    lengths = [random.Random(i).randint(20, 200) for i in range(1000)]
    batches = length_bucketed_batches(lengths, 16, random.Random(0))
    seen = [i for b in batches for i in b]
    assert len(seen) == len(set(seen)) == 62 * 16  # full batches only; 8 leftovers wait for the next epoch
    # within a batch the lengths are close: the spread is far below that of a random batch
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches) / len(batches)
    assert spread < 15


@pytest.mark.parametrize(
    ("thinking_fraction", "thinking", "reflecting", "confirming"),
    [(1.0, 400, 85, 44), (0.5, 200, 39, 21)],  # the preset, and half the examples thinking
)
def test_thinking_variant_of_the_warm_start_data(
    thinking_fraction: float, thinking: int, reflecting: int, confirming: int
) -> None:
    from selfimprove.knowledge.thinking_data import CONFIRMATION
    from selfimprove.policy.tiny import _with_thinking
    from selfimprove.tasks.thinking import parse_thinking

    config = dataclasses.replace(
        PRESETS["tiny-think"], train_problems=400, thinking_fraction=thinking_fraction
    )
    recipe = load_recipe("arith")
    tasks = generate_tasks("train", 400, seed=0, min_steps=1, max_steps=4)
    prompts = [format_prompt(recipe, t) for t in tasks]
    solutions = [t.solution or "" for t in tasks]
    new_prompts, new_solutions = _with_thinking(tasks, prompts, solutions, config)
    thinks = [i for i, s in enumerate(new_solutions) if s != solutions[i]]
    assert len(thinks) == thinking  # thinking_fraction of the examples, drawn without replacement
    reflects = [i for i in thinks if new_prompts[i] != prompts[i]]
    # 30% of the thinking examples were drawn to reflect; the longest do not fit and think plainly
    assert len(reflects) == reflecting < 0.3 * thinking
    assert all(len(new_prompts[i]) + len(new_solutions[i]) <= config.max_reflect_chars for i in reflects)
    for i in thinks:
        parse = parse_thinking(new_solutions[i])
        assert parse.well_formed, parse.issues
        assert parse.answer == solutions[i]  # the answer lines are the gold solution, unchanged
        assert (parse.reflection is not None) == (i in reflects)
        assert ("\nWork: " in new_solutions[i]) == config.thinking_work  # a Work line only when asked for
        assert "\nPlan: a=" in new_solutions[i]  # the named plan: each result named, not used
    confirmed = 0
    for i in reflects:  # the earlier attempt sits in the prompt (no loss on it), after the original prompt
        attempt = parse_thinking(new_prompts[i][len(prompts[i]) :])
        assert new_prompts[i].startswith(prompts[i]) and attempt.thinking
        # half of the reflection examples confirm a right attempt; the others fix a planted slip
        confirms = parse_thinking(new_solutions[i]).reflection == CONFIRMATION
        assert (attempt.answer == solutions[i]) == confirms
        confirmed += confirms
    assert confirmed == confirming
    assert _with_thinking(tasks, prompts, solutions, config) == (new_prompts, new_solutions)  # seeded


def test_solution_work_reaches_the_attempts_that_reflection_prompts_carry() -> None:
    from selfimprove.knowledge.work import inline_work
    from selfimprove.policy.tiny import _with_solution_work, _with_thinking

    config = dataclasses.replace(PRESETS["tiny-think"], train_problems=400)
    recipe = load_recipe("arith")
    tasks = generate_tasks("train", 400, seed=0, min_steps=1, max_steps=4)
    prompts = [format_prompt(recipe, t) for t in tasks]
    thought_prompts, thought = _with_thinking(tasks, prompts, [t.solution or "" for t in tasks], config)
    worked_prompts, worked = _with_solution_work(thought_prompts, thought)
    assert worked == [inline_work(s) for s in thought]
    reflecting = {i for i, p in enumerate(thought_prompts) if p != prompts[i]}
    # a question prompt has no annotation and is unchanged
    assert all(worked_prompts[i] == prompts[i] for i in range(len(prompts)) if i not in reflecting)
    # the earlier attempt in a reflection prompt now writes its work, like the answer lines the model learns
    changed = [
        i for i in reflecting if worked_prompts[i] == inline_work(thought_prompts[i]) != thought_prompts[i]
    ]
    assert (len(reflecting), len(changed)) == (85, 69)  # some attempts split nothing
    assert all(worked_prompts[i].startswith(prompts[i]) for i in reflecting)


def test_the_published_presets_keep_their_hashes() -> None:
    # docs/benchmarks.md names the models by these digests; a knob added later counts only when set
    assert PRESETS["tiny"].digest() == "4a297be567f1"
    assert PRESETS["tiny-think"].digest() == "f1957470dc7b"
    assert PRESETS["tiny-work"].digest() == "ba93a971dc2f"
    assert PRESETS["tiny-work"] == dataclasses.replace(PRESETS["tiny"], solution_work=True)
