"""Atomic I/O, pair records and typed config: the pieces every module leans on."""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass

import pytest

from selfimprove.config import dump_toml, from_mapping, parse_toml, to_mapping
from selfimprove.io import atomic_write_json, atomic_write_text, read_jsonl
from selfimprove.records import PreferencePair, read_pairs, write_pairs


def test_atomic_write_replaces_whole_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "sub" / "a.json"
    atomic_write_json(target, {"x": 1})
    atomic_write_text(target, "second\n")
    assert target.read_text() == "second\n"
    assert [p.name for p in target.parent.iterdir()] == ["a.json"]
    mode = stat.S_IMODE(os.stat(target).st_mode)
    assert mode & 0o044 == 0o044 & ~_umask()  # readable like a file made by open()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_read_jsonl_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"a": 1}\n\n{"a": \n')
    rows = read_jsonl(path)
    assert next(rows) == (1, {"a": 1})
    with pytest.raises(ValueError, match=r"bad\.jsonl:3: malformed JSON"):
        next(rows)
    path.write_text("[1, 2]\n")
    with pytest.raises(ValueError, match=r"bad\.jsonl:1: expected a JSON object, got list"):
        list(read_jsonl(path))


def test_pairs_round_trip_flat_and_missing_fields_are_named(tmp_path):
    pairs = [
        PreferencePair("Q\n", "a\n", "b\n", False, False, {"kind": "step", "q_chosen": 1.0}),
        PreferencePair("Q\n", "a\n#### 1", "b\n#### 2", metadata={"kind": "full"}),
    ]
    path = tmp_path / "pairs.jsonl"
    write_pairs(path, pairs)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert rows[0] == {
        "prompt": "Q\n",
        "chosen": "a\n",
        "rejected": "b\n",
        "chosen_eos": False,
        "rejected_eos": False,
        "kind": "step",
        "q_chosen": 1.0,
    }
    assert read_pairs(path) == pairs
    path.write_text('{"prompt": "p", "chosen": "c"}\n')
    with pytest.raises(ValueError, match=r"pairs\.jsonl:1: missing field\(s\) \['rejected'\]"):
        read_pairs(path)


@dataclass(frozen=True)
class _Inner:
    rate: float = 0.5
    names: tuple[str, ...] = ("a",)


@dataclass(frozen=True)
class _Outer:
    count: int = 1
    label: str | None = None
    inner: _Inner = _Inner()

    def __post_init__(self) -> None:
        if self.count < 0:
            raise ValueError(f"count must be >= 0, got {self.count}")


def test_from_mapping_converts_and_names_bad_keys():
    built = from_mapping(_Outer, {"count": 2, "inner": {"rate": 1, "names": ["x", "y"]}}, where="f.toml")
    assert built == _Outer(count=2, inner=_Inner(rate=1.0, names=("x", "y")))
    assert isinstance(built.inner.rate, float)
    with pytest.raises(
        ValueError, match=r"f\.toml: unknown key\(s\) \['cuont'\]; allowed: \['count', 'inner', 'label'\]"
    ):
        from_mapping(_Outer, {"cuont": 2}, where="f.toml")
    with pytest.raises(TypeError, match=r"f\.toml\.inner\.rate: expected a number, got str 'fast'"):
        from_mapping(_Outer, {"inner": {"rate": "fast"}}, where="f.toml")
    with pytest.raises(TypeError, match=r"f\.toml\.count: expected an integer, got bool True"):
        from_mapping(_Outer, {"count": True}, where="f.toml")
    with pytest.raises(ValueError, match=r"f\.toml: count must be >= 0, got -1"):
        from_mapping(_Outer, {"count": -1}, where="f.toml")


def test_toml_round_trip_of_a_resolved_config():
    data = to_mapping(_Outer(count=3, inner=_Inner(names=("p", 'q"r'))))
    assert "label" not in data  # None has no TOML form
    text = dump_toml({**data, "text": "line\nbreak", "flag": True})
    assert parse_toml(text, where="t") == {**data, "text": "line\nbreak", "flag": True}
    with pytest.raises(ValueError, match="t: invalid TOML"):
        parse_toml("a = ", where="t")
