"""Thinking warm-start data: round-0 completions, planted slips with reflections, and the thinking mask."""

from __future__ import annotations

import random
import re

import pytest
from kgdata import T1, T2

from selfimprove.knowledge import KnowledgeGraph, plant_slip, thinking_examples, thinking_solution
from selfimprove.knowledge.extract import singular
from selfimprove.knowledge.thinking_data import MAX_REFLECT_CHARS
from selfimprove.tasks.arith import evaluate_expression, generate_tasks
from selfimprove.tasks.recipe import format_prompt, load_recipe
from selfimprove.tasks.task import Task
from selfimprove.tasks.thinking import THINKING_CLOSE, THINKING_OPEN, parse_thinking
from selfimprove.verify.annotations import annotation_errors
from selfimprove.verify.math import MathVerifier

MASK = ((THINKING_OPEN, THINKING_CLOSE, 0.0),)


@pytest.fixture(scope="module")
def tasks() -> list[Task]:
    return generate_tasks("train", 300, seed=21)


@pytest.fixture(scope="module")
def graph(tasks: list[Task]) -> KnowledgeGraph:
    return KnowledgeGraph.build(tasks)


@pytest.fixture(scope="module")
def prompts(tasks: list[Task]) -> list[str]:
    recipe = load_recipe("arith")
    return [format_prompt(recipe, t) for t in tasks]


def test_thinking_solution_is_pinned() -> None:
    graph = KnowledgeGraph.build([T1, T2])
    assert thinking_solution(T2, graph) == (
        "<|thinking|>\n"
        "Concepts: time, rate, loss\n"
        "Example: 12-5\n"  # t1: the nearest other solved problem (it shares "loss")
        "Known: time 3, rate 8, loss 4\n"
        "Plan: 3*8, 24-4\n"
        "<|/thinking|>\n" + (T2.solution or "")
    )
    assert thinking_solution(T2, None) == (
        "<|thinking|>\nConcepts: time, rate, loss\nKnown: time 3, rate 8, loss 4\nPlan: 3*8, 24-4\n"
        "<|/thinking|>\n" + (T2.solution or "")
    )
    with pytest.raises(ValueError, match="no solution"):
        thinking_solution(Task("x", "Q?", "1"), graph)


def test_thinking_is_the_computation_in_short_form(tasks: list[Task], graph: KnowledgeGraph) -> None:
    verifier = MathVerifier()
    for task in tasks:
        completion = thinking_solution(task, graph)
        parsed = parse_thinking(completion)
        assert parsed.well_formed and parsed.answer == task.solution
        assert verifier.check(task, completion).correct
        lines = dict(line.split(": ", 1) for line in (parsed.thinking or "").split("\n"))
        assert list(lines) == ["Concepts", "Example", "Known", "Plan"]
        # the plan is exactly the order of the answer's operations
        assert lines["Plan"].split(", ") == re.findall(r"<<([^=]*)=", task.solution or "")
        # every known quantity is stated in the question, in the order stated
        numbers = [re.sub(r"^[a-z]+ ", "", k) for k in lines["Known"].split(", ")]
        assert numbers == re.findall(r"\d+%?", task.question)
        # the example is another problem's plan: retrieval left the task itself out
        assert graph.retrieve(task.question, exclude=(task.id,)).example_plans[0] == lines["Example"]
        assert task.id not in graph.retrieve(task.question).examples


def _shape(text: str) -> tuple[str, list[str]]:
    """Text with numbers and words abstracted, and its words made singular ("1 pear" and "4 pears" match)."""
    return re.sub(r"\d+", "N", re.sub(r"[a-z]+", "w", text)), [
        singular(w) for w in re.findall(r"[a-z]+", text)
    ]


def test_plant_slip_makes_one_wrong_step_and_carries_it(tasks: list[Task]) -> None:
    rng = random.Random(0)
    verifier = MathVerifier()
    for task in tasks:
        slip = plant_slip(task.solution or "", rng)
        assert slip is not None  # every arith solution is a chain that can take a slip
        errors = annotation_errors(slip.wrong)
        assert len(errors) == 1, slip.wrong  # the slipped step only: later steps compute on its value
        wrong_line = (slip.wrong.split("\n"))[slip.step - 1]
        assert errors[0].annotation in wrong_line
        assert not verifier.check(task, slip.wrong).correct
        assert _shape(slip.wrong) == _shape(task.solution or "")  # the same text but for the numbers
        m = re.fullmatch(r"Step (\d+) is wrong: (\d+[-+*/]\d+)=(\d+), not (\d+)\.", slip.reflection)
        assert m is not None and int(m.group(1)) == slip.step
        assert evaluate_expression(m.group(2)) == int(m.group(3)) != int(m.group(4))
        assert f"={m.group(4)}>>" in wrong_line
    assert plant_slip("no annotations\n#### 3", rng) is None
    assert plant_slip("5-4=<<5-4=1>>1 apple.\n#### 2", rng) is None  # final line is not the last result
    one = plant_slip("He pays 64, so 65-64=<<65-64=1>>1 dollar.\n#### 1", random.Random(0))
    assert one is not None and re.fullmatch(
        r"He pays 64, so 65-64=<<65-64=(\d+)>>\1 dollars\.\n#### \1", one.wrong
    )


def test_thinking_examples_mix_plain_and_reflection(tasks, graph, prompts) -> None:
    verifier = MathVerifier()
    examples = thinking_examples(tasks, prompts, graph, reflect_fraction=0.3, seed=1)
    assert examples == thinking_examples(tasks, prompts, graph, reflect_fraction=0.3, seed=1)
    assert len(examples) == len(tasks)
    reflective = 0
    for task, prompt, (example_prompt, completion) in zip(tasks, prompts, examples, strict=True):
        parsed = parse_thinking(completion)
        assert parsed.well_formed and parsed.answer == task.solution
        assert verifier.check(task, completion).correct  # the completion is always right
        if example_prompt == prompt:
            assert parsed.reflection is None and completion == thinking_solution(task, graph)
            continue
        reflective += 1
        attempt = example_prompt[len(prompt) :]
        assert example_prompt.startswith(prompt) and attempt.endswith("\n")
        first = parse_thinking(attempt)
        assert first.well_formed and not verifier.check(task, attempt).correct
        assert "Example:" in (first.thinking or "")
        step = int(re.match(r"Step (\d+)", parsed.reflection or "").group(1))
        assert len(annotation_errors(first.answer)) == 1 and annotation_errors(
            first.answer.split("\n")[step - 1]
        )
        assert parsed.thinking == "Plan: " + ", ".join(re.findall(r"<<([^=]*)=", task.solution or ""))
        assert len(example_prompt) + len(completion) <= MAX_REFLECT_CHARS
    # 77 of 300 drawn at reflect_fraction 0.3 (binomial: 90 +- 8); 51 fit the tiny model's context budget
    unbounded = thinking_examples(tasks, prompts, graph, reflect_fraction=0.3, seed=1, max_chars=10**6)
    assert (reflective, sum(p != q for (p, _), q in zip(unbounded, prompts, strict=True))) == (51, 77)
    none = thinking_examples(tasks[:20], prompts[:20], graph, reflect_fraction=0.0, seed=1)
    assert none == [(p, thinking_solution(t, graph)) for t, p in zip(tasks[:20], prompts[:20], strict=True)]
    every = thinking_examples(tasks[:20], prompts[:20], graph, reflect_fraction=1.0, seed=1, max_chars=10**6)
    assert all(parse_thinking(c).reflection for _, c in every)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"reflect_fraction": 1.5}, "reflect_fraction"), ({"reflect_fraction": -0.1}, "reflect_fraction")],
)
def test_thinking_examples_reject_bad_arguments(tasks, graph, prompts, kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        thinking_examples(tasks[:2], prompts[:2], graph, seed=0, **kwargs)
    with pytest.raises(ValueError, match="prompts"):
        thinking_examples(tasks[:2], prompts[:1], graph, reflect_fraction=0.5, seed=0)


def test_the_thinking_mask_covers_exactly_the_thinking_block(tasks, graph, prompts) -> None:
    from selfimprove.policy.tiny import train_tokenizer
    from selfimprove.train.data import tokenize_examples

    examples = thinking_examples(tasks[:60], prompts[:60], graph, reflect_fraction=0.5, seed=2)
    assert any(p != q for (p, _), q in zip(examples, prompts[:60], strict=True))  # both kinds present
    tokenizer = train_tokenizer([p + c for p, c in examples], 400)
    tokenized = tokenize_examples(tokenizer, examples, max_length=512, mask_spans=MASK)
    assert len(tokenized) == len(examples)
    for (_, completion), item in zip(examples, tokenized, strict=True):
        masked = [i for i, w in enumerate(item.weights) if w == 0.0]
        assert masked == list(range(masked[0], masked[-1] + 1))  # one contiguous block
        assert set(item.weights) == {0.0, 1.0}
        inside = completion[
            completion.index(THINKING_OPEN) + len(THINKING_OPEN) : completion.index(THINKING_CLOSE)
        ]
        assert tokenizer.decode([item.completion_ids[i] for i in masked]) == inside
        # the tags, the reflection and the answer keep full weight
        assert tokenizer.convert_ids_to_tokens(item.completion_ids[masked[0] - 1]) == THINKING_OPEN
        assert tokenizer.convert_ids_to_tokens(item.completion_ids[masked[-1] + 1]) == THINKING_CLOSE
        assert len(item.prompt_ids) + len(item.completion_ids) < 512  # fits the tiny model's context


def test_confirmation_examples_show_a_right_attempt_and_confirm_it() -> None:
    from selfimprove.knowledge.thinking_data import CONFIRMATION

    tasks = generate_tasks("train", 300, seed=4, min_steps=1, max_steps=2)
    recipe = load_recipe("arith")
    prompts = [format_prompt(recipe, t) for t in tasks]
    graph = KnowledgeGraph.build(tasks)
    plain = thinking_examples(tasks, prompts, graph, reflect_fraction=0.5, seed=1)
    assert (
        thinking_examples(tasks, prompts, graph, reflect_fraction=0.5, seed=1, confirm_fraction=0.0) == plain
    )
    mixed = thinking_examples(tasks, prompts, graph, reflect_fraction=0.5, seed=1, confirm_fraction=0.5)
    confirmed = [(t, p, c) for t, (p, c) in zip(tasks, mixed, strict=True) if CONFIRMATION in c]
    slipped = [c for _, c in mixed if "is wrong:" in c]
    # about half of the ~150 reflection examples each way (1-2 step problems always fit)
    assert 50 <= len(confirmed) <= 100 and 50 <= len(slipped) <= 100
    for task, prompt, completion in confirmed:
        attempt = parse_thinking(prompt[prompt.index(THINKING_OPEN) :])
        assert attempt.well_formed and attempt.answer == task.solution  # the attempt shown is right
        refined = parse_thinking(completion)
        assert refined.reflection == CONFIRMATION and refined.answer == task.solution
    with pytest.raises(ValueError, match=r"confirm_fraction=1\.5; allowed"):
        thinking_examples(tasks, prompts, graph, reflect_fraction=0.5, seed=1, confirm_fraction=1.5)


def test_named_plan_names_every_intermediate_result_and_reads_back_to_the_plan() -> None:
    from selfimprove.knowledge.extract import extract
    from selfimprove.knowledge.thinking_data import named_plan

    tasks = generate_tasks("train", 200, seed=5, min_steps=1, max_steps=4)
    chained = 0
    for task in tasks:
        ext = extract(task.question, task.solution)
        parts = named_plan(ext).split(", ")
        assert [p.split("=")[0] for p in parts] == list("abcd"[: len(ext.steps)])
        values = {p.split("=")[0]: step.result for p, step in zip(parts, ext.steps, strict=True)}
        # substituting each name by its result gives back the plain plan, operand for operand
        read_back = [
            re.sub(r"[a-z]", lambda m, values=values: values[m.group()], p.split("=", 1)[1]) for p in parts
        ]
        assert ", ".join(read_back) == ext.plan
        # no step after the first uses a number that an earlier step computed: it uses the name
        for part, step in zip(parts[1:], ext.steps[1:], strict=True):
            chained += any(step.from_previous)
            assert any(step.from_previous) == bool(re.search(r"[a-z]", part.split("=", 1)[1]))
    assert chained > 300  # arith chains its steps: nearly every later step uses an earlier result
    assert named_plan(extract(tasks[0].question, "")) == ""
