"""The PRefLexOR thinking format: layout, parser round trips, and hostile text recorded, never raised."""

from __future__ import annotations

import random
import time

import pytest

from selfimprove.tasks.thinking import (
    REFLECT_CLOSE,
    REFLECT_OPEN,
    TAGS,
    THINKING_CLOSE,
    THINKING_OPEN,
    ThinkingParse,
    format_thinking,
    parse_thinking,
    split_rounds,
)

THINK = "Concepts: apple, count, loss\nKnown: count 12, loss 5\nPlan: 12-5"
ANSWER = "He gives away 5, so 12-5=<<12-5=7>>7 apples.\n#### 7"


def test_tags_are_the_tiny_models_special_tokens() -> None:
    from selfimprove.policy import tiny

    assert (THINKING_OPEN, THINKING_CLOSE, REFLECT_OPEN, REFLECT_CLOSE) == (
        tiny.THINKING_OPEN,
        tiny.THINKING_CLOSE,
        tiny.REFLECT_OPEN,
        tiny.REFLECT_CLOSE,
    )
    assert set(TAGS) <= set(tiny.SPECIAL_TOKENS)


def test_format_is_the_contract_layout() -> None:
    assert format_thinking(THINK, ANSWER) == f"<|thinking|>\n{THINK}\n<|/thinking|>\n{ANSWER}"
    reflection = "Step 1 is wrong: 12-5=7, not 8."
    assert format_thinking(THINK, ANSWER, reflection=reflection) == (
        f"<|reflect|>\n{reflection}\n<|/reflect|>\n<|thinking|>\n{THINK}\n<|/thinking|>\n{ANSWER}"
    )


@pytest.mark.parametrize("reflection", [None, "Step 1 is wrong: 12-5=7, not 8."])
@pytest.mark.parametrize(
    ("thinking", "answer"), [(THINK, ANSWER), ("  padded \n", "\n#### 3\n"), ("one line", "#### -2.5")]
)
def test_parse_inverts_format(thinking: str, answer: str, reflection: str | None) -> None:
    parsed = parse_thinking(format_thinking(thinking, answer, reflection=reflection))
    assert parsed == ThinkingParse(
        reflection=reflection.strip() if reflection else None,
        thinking=thinking.strip(),
        answer=answer.strip(),
        issues=(),
    )
    assert parsed.well_formed


@pytest.mark.parametrize("part", ["thinking", "answer", "reflection"])
@pytest.mark.parametrize("tag", TAGS)
def test_format_refuses_a_tag_inside_a_part(part: str, tag: str) -> None:
    parts = {"thinking": THINK, "answer": ANSWER, "reflection": "ok"}
    parts[part] = f"x {tag} y"
    with pytest.raises(ValueError, match=part):
        format_thinking(parts["thinking"], parts["answer"], reflection=parts["reflection"])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", (None, None, "", ("missing <|thinking|>", "empty answer"))),
        ("#### 5", (None, None, "#### 5", ("missing <|thinking|>",))),
        ("<|/thinking|>", (None, "", "", ("missing <|thinking|>", "empty thinking", "empty answer"))),
        ("<|/reflect|>#### 5", (None, None, "#### 5", ("missing <|thinking|>", "stray <|/reflect|>"))),
        # the thinking prefix sat in the prompt: the completion starts inside the block
        (
            "Known: 12\nPlan: 12-5\n<|/thinking|>\n#### 7",
            (None, "Known: 12\nPlan: 12-5", "#### 7", ("missing <|thinking|>",)),
        ),
        (
            "<|thinking|>\nPlan: 1+1\n#### 2",
            (None, "Plan: 1+1\n#### 2", "", ("unclosed <|thinking|>", "empty answer")),
        ),
        (
            "<|thinking|>a<|thinking|>b<|/thinking|>c<|/thinking|>",
            (None, "ab", "c", ("nested <|thinking|>", "stray <|/thinking|>")),
        ),
        ("<|thinking|>\n<|/thinking|>\n#### 1", (None, "", "#### 1", ("empty thinking",))),
        ("intro <|thinking|>t<|/thinking|>a", (None, "t", "a", ("text before <|thinking|>",))),
        (
            "<|reflect|>r<|thinking|>t<|/thinking|>a",
            ("r", "t", "a", ("unclosed <|reflect|>",)),
        ),
        ("<|reflect|><|/reflect|><|thinking|>t<|/thinking|>a", ("", "t", "a", ("empty reflection",))),
        (
            "<|reflect|>r <|reflect|> s<|/reflect|><|thinking|>t<|/thinking|>a",
            ("r  s", "t", "a", ("nested <|reflect|>",)),
        ),
        (
            "<|thinking|>t<|/thinking|>a\n<|thinking|>t2<|/thinking|>a2",
            (None, "t", "a", ("duplicate <|thinking|>",)),
        ),
        (
            "<|thinking|>t<|/thinking|>a\n<|reflect|>r<|/reflect|>",
            (None, "t", "a", ("duplicate <|reflect|>",)),
        ),
        ("<|thinking|>t<|/reflect|><|/thinking|>a", (None, "t", "a", ("stray <|/reflect|>",))),
    ],
)
def test_malformed_tags_are_recorded(text: str, expected: tuple) -> None:
    parsed = parse_thinking(text)
    assert (parsed.reflection, parsed.thinking, parsed.answer, parsed.issues) == expected
    assert not parsed.well_formed


def test_random_hostile_text_never_raises_and_parts_never_hold_a_tag() -> None:
    rng = random.Random(0)
    pieces = [*TAGS, "\n", "x", "#### 3", " ", "<|", "|>", "<|thinking", "/thinking|>"]
    for _ in range(2000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
        parsed = parse_thinking(text)
        for part in (parsed.reflection, parsed.thinking, parsed.answer):
            assert part is None or not any(tag in part for tag in TAGS), text
        assert parsed.well_formed == (not parsed.issues)


def test_huge_input_is_linear() -> None:
    start = time.perf_counter()
    rounds = parse_thinking("".join(TAGS) * 100_000 + "x" * 1_000_000)  # 4 MB: 400,000 tags
    strays = parse_thinking("<|thinking|>" + "<|/reflect|>x" * 300_000 + "<|/thinking|>\n#### 1")
    plain = parse_thinking("<|thinking|>" + "x" * 2_000_000 + "<|/thinking|>#### 1")
    assert time.perf_counter() - start < 5.0
    # the first round is parsed, the rest is another round: recorded once, not scanned tag by tag
    assert rounds.issues == ("empty reflection", "empty thinking", "duplicate <|reflect|>", "empty answer")
    assert strays.issues == ("stray <|/reflect|>",) * 300_000 and strays.thinking == "x" * 300_000
    assert plain.well_formed and len(plain.thinking or "") == 2_000_000


def test_split_rounds_cuts_a_transcript_into_parseable_rounds() -> None:
    round0 = format_thinking("Plan: 12-4", "12-4=<<12-4=8>>8\n#### 8")
    round1 = format_thinking(THINK, ANSWER, reflection="Step 1 is wrong: 12-5=7, not 8.")
    transcript = round0 + "\n" + round1
    rounds = split_rounds(transcript)
    assert "".join(rounds) == transcript
    assert [parse_thinking(r).answer for r in rounds] == ["12-4=<<12-4=8>>8\n#### 8", ANSWER]
    assert all(parse_thinking(r).well_formed for r in rounds)
    assert split_rounds("") == [] and split_rounds("#### 1") == ["#### 1"]
    # a thinking block opened inside an unclosed reflection is part of that round, not a new one
    assert split_rounds("<|reflect|>r<|thinking|>t<|/thinking|>a") == [
        "<|reflect|>r<|thinking|>t<|/thinking|>a"
    ]
