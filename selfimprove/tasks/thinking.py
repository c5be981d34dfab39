"""The thinking format of PRefLexOR: `<|thinking|>` ... `<|/thinking|>`, then the answer, after an optional
reflection `<|reflect|>` ... `<|/reflect|>` on the previous round.

PRefLexOR: Buehler, "PRefLexOR: Preference-based Recursive Language Modeling for Exploratory Optimization of
Reasoning and Agentic Thinking", 2024 (https://arxiv.org/abs/2410.12375). One round's completion is

    [<|reflect|>\\n{reflection}\\n<|/reflect|>\\n]<|thinking|>\\n{thinking}\\n<|/thinking|>\\n{answer}

where the answer is in GSM8K format (one step per line, last line `#### N`). Round 0 has no reflection.

`parse_thinking` splits any text, including hostile model output, into reflection, thinking and answer. It
never raises: every deviation from the layout (a missing, unclosed, nested, stray or duplicated tag, an
empty part) is recorded in `issues`, and the returned parts never contain a tag, so they can be fed back
into `format_thinking` safely. It is linear in the length of the text.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

__all__ = [
    "REFLECT_CLOSE",
    "REFLECT_OPEN",
    "TAGS",
    "THINKING_CLOSE",
    "THINKING_OPEN",
    "ThinkingParse",
    "format_thinking",
    "parse_thinking",
    "split_rounds",
]

# Equal to selfimprove.policy.tiny's special tokens (a test asserts it); defined here too so that the
# format does not import the tiny model (and torch) to be parsed.
THINKING_OPEN, THINKING_CLOSE = "<|thinking|>", "<|/thinking|>"
REFLECT_OPEN, REFLECT_CLOSE = "<|reflect|>", "<|/reflect|>"
TAGS = (REFLECT_OPEN, REFLECT_CLOSE, THINKING_OPEN, THINKING_CLOSE)


@dataclass(frozen=True)
class ThinkingParse:
    """One round split into its parts; `issues` says what deviated from the layout (empty when none)."""

    reflection: str | None  # inside the first <|reflect|>..<|/reflect|>, stripped; None without a reflection
    thinking: str | None  # inside the first <|thinking|>..<|/thinking|>, stripped; None without a thinking
    answer: str  # text after the thinking block (or the whole text when there is none), stripped
    issues: tuple[str, ...]

    @property
    def well_formed(self) -> bool:
        return not self.issues


_TAG = re.compile("|".join(re.escape(tag) for tag in TAGS))


def _find_tag(text: str, start: int) -> tuple[int, str | None]:
    """Position and name of the first tag at or after `start` ((len(text), None) when there is none)."""
    match = _TAG.search(text, start)
    return (match.start(), match.group()) if match else (len(text), None)


def _clean(text: str, issues: list[str], stray: dict[str, str]) -> str:
    """`text` without its tags; each removed tag is recorded as stray[tag] (e.g. "stray <|/reflect|>")."""
    for match in _TAG.finditer(text):
        issues.append(stray[match.group()])
    cleaned = _TAG.sub("", text)
    # removing "<|/thinking|>" from "<|<|/thinking|>/thinking|>" would join a new tag; tags hold no space
    return cleaned if _TAG.search(cleaned) is None else _TAG.sub(" ", text)


def parse_thinking(text: str) -> ThinkingParse:
    """Split one round's text into reflection, thinking and answer; never raises for any str."""
    issues: list[str] = []
    pos = 0
    reflection: str | None = None
    thinking: str | None = None
    first_at, first = _find_tag(text, 0)

    # 1. an optional reflection, which must come before the thinking
    if first == REFLECT_OPEN:
        if text[:first_at].strip():
            issues.append("text before <|reflect|>")
        body = first_at + len(REFLECT_OPEN)
        close = text.find(REFLECT_CLOSE, body)
        next_thinking = text.find(THINKING_OPEN, body)
        if close < 0 or 0 <= next_thinking < close:
            issues.append("unclosed <|reflect|>")
            end = next_thinking if next_thinking >= 0 else len(text)
            pos = end
        else:
            end = close
            pos = close + len(REFLECT_CLOSE)
        nested = {REFLECT_OPEN: "nested <|reflect|>", REFLECT_CLOSE: "stray <|/reflect|>"}
        nested |= {THINKING_OPEN: "<|thinking|> inside <|reflect|>", THINKING_CLOSE: "stray <|/thinking|>"}
        reflection = _clean(text[body:end], issues, nested).strip()
        if not reflection:
            issues.append("empty reflection")

    # 2. the thinking block; a lone close tag means the open tag was left out (or is in the prompt)
    open_at = text.find(THINKING_OPEN, pos)
    close_at = text.find(THINKING_CLOSE, pos)
    before = {REFLECT_OPEN: "duplicate <|reflect|>", REFLECT_CLOSE: "stray <|/reflect|>"}
    before |= {THINKING_OPEN: "stray <|thinking|>", THINKING_CLOSE: "stray <|/thinking|>"}
    inside = {REFLECT_OPEN: "<|reflect|> inside <|thinking|>", REFLECT_CLOSE: "stray <|/reflect|>"}
    inside |= {THINKING_OPEN: "nested <|thinking|>", THINKING_CLOSE: "stray <|/thinking|>"}
    if open_at >= 0 and (close_at < 0 or open_at < close_at):
        if _clean(text[pos:open_at], issues, before).strip():
            issues.append("text before <|thinking|>")
        body = open_at + len(THINKING_OPEN)
        close_at = text.find(THINKING_CLOSE, body)
        if close_at < 0:
            issues.append("unclosed <|thinking|>")
            thinking = _clean(text[body:], issues, inside).strip()
            pos = len(text)
        else:
            thinking = _clean(text[body:close_at], issues, inside).strip()
            pos = close_at + len(THINKING_CLOSE)
    elif close_at >= 0:
        issues.append("missing <|thinking|>")
        thinking = _clean(text[pos:close_at], issues, inside).strip()
        pos = close_at + len(THINKING_CLOSE)
    else:
        issues.append("missing <|thinking|>")
    if thinking is not None and not thinking:
        issues.append("empty thinking")

    # 3. the answer runs to the next opening tag: whatever follows is another round, not this answer
    next_reflect = text.find(REFLECT_OPEN, pos)
    next_thinking = text.find(THINKING_OPEN, pos)
    starts = [p for p in (next_reflect, next_thinking) if p >= 0]
    end = min(starts) if starts else len(text)
    if starts:
        issues.append("duplicate <|reflect|>" if end == next_reflect else "duplicate <|thinking|>")
    after = {REFLECT_OPEN: "duplicate <|reflect|>", REFLECT_CLOSE: "stray <|/reflect|>"}
    after |= {THINKING_OPEN: "duplicate <|thinking|>", THINKING_CLOSE: "stray <|/thinking|>"}
    answer = _clean(text[pos:end], issues, after).strip()
    if not answer:
        issues.append("empty answer")
    return ThinkingParse(reflection, thinking, answer, tuple(issues))


def format_thinking(thinking: str, answer: str, *, reflection: str | None = None) -> str:
    """One round in the PRefLexOR layout; `parse_thinking` of the result gives back the stripped parts.

    Raises ValueError when a part contains one of the four tags (the round could not be parsed back).
    """
    parts = {"thinking": thinking, "answer": answer, "reflection": reflection or ""}
    for name, part in parts.items():
        for tag in TAGS:
            if tag in part:
                raise ValueError(f"{name} contains the tag {tag!r}; tags are added by format_thinking only")
    head = f"{REFLECT_OPEN}\n{reflection.strip()}\n{REFLECT_CLOSE}\n" if reflection is not None else ""
    return f"{head}{THINKING_OPEN}\n{thinking.strip()}\n{THINKING_CLOSE}\n{answer.strip()}"


def split_rounds(text: str) -> list[str]:
    """A multi-round transcript cut into rounds: a new round starts at each `<|reflect|>` and at each
    `<|thinking|>` that follows a closed thinking block. Concatenating the rounds gives back `text`."""
    cuts = [0]
    in_reflect = closed_thinking = False
    for match in _TAG.finditer(text):
        tag, at = match.group(), match.start()
        reflects = tag == REFLECT_OPEN and bool(text[cuts[-1] : at].strip())
        if reflects or (tag == THINKING_OPEN and not in_reflect and closed_thinking):
            cuts.append(at)
            closed_thinking = False
        closed_thinking = closed_thinking or tag == THINKING_CLOSE
        in_reflect = tag == REFLECT_OPEN or (in_reflect and tag != REFLECT_CLOSE)
    cuts.append(len(text))
    return [text[a:b] for a, b in itertools.pairwise(cuts) if b > a]
