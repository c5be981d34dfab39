"""Records that cross module lines between search, train and loop: preference pairs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selfimprove.io import atomic_write_jsonl, read_jsonl


@dataclass(frozen=True)
class PreferencePair:
    """One preference: `chosen` and `rejected` both continue `prompt`.

    `chosen_eos`/`rejected_eos` say whether the completion ends the sequence (the trainer appends the
    tokenizer's end token): True for full solutions, False for a single step that a later step follows.
    `metadata` carries provenance: source search, task id, kind ("step", "extended", "full"), Qs, visits,
    depth, tree id.
    """

    prompt: str
    chosen: str
    rejected: str
    chosen_eos: bool = True
    rejected_eos: bool = True
    metadata: dict[str, Any] = field(default_factory=dict, hash=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "prompt": self.prompt,
            "chosen": self.chosen,
            "rejected": self.rejected,
            "chosen_eos": self.chosen_eos,
            "rejected_eos": self.rejected_eos,
            **{k: v for k, v in self.metadata.items() if k not in _CORE_FIELDS},
        }

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> PreferencePair:
        return cls(
            prompt=str(row["prompt"]),
            chosen=str(row["chosen"]),
            rejected=str(row["rejected"]),
            chosen_eos=bool(row.get("chosen_eos", True)),
            rejected_eos=bool(row.get("rejected_eos", True)),
            metadata={k: v for k, v in row.items() if k not in _CORE_FIELDS},
        )


_CORE_FIELDS = ("prompt", "chosen", "rejected", "chosen_eos", "rejected_eos")


def write_pairs(path: str | Path, pairs: list[PreferencePair]) -> None:
    """Write pairs as JSONL (flat rows: TRL and `datasets.load_dataset("json", ...)` read them as is)."""
    atomic_write_jsonl(path, (pair.to_dict() for pair in pairs))


def read_pairs(path: str | Path) -> list[PreferencePair]:
    """Read pairs.jsonl; a row without prompt/chosen/rejected raises naming file and line."""
    pairs = []
    for lineno, row in read_jsonl(path):
        missing = [key for key in ("prompt", "chosen", "rejected") if key not in row]
        if missing:
            raise ValueError(
                f"{path}:{lineno}: missing field(s) {missing}; a pair needs prompt, chosen, rejected"
            )
        pairs.append(PreferencePair.from_dict(row))
    return pairs
