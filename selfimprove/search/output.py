"""Writing a search's results to a folder: trees/*.json, pairs.jsonl, samples.jsonl, stats.json."""

from __future__ import annotations

import re
from pathlib import Path

from selfimprove.io import atomic_write_json, atomic_write_jsonl, read_jsonl
from selfimprove.records import write_pairs
from selfimprove.search.base import Sample, SearchResult


def _file_name(task_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", task_id) + ".json"


def write_search_result(result: SearchResult, out_dir: str | Path) -> None:
    """Each file written atomically; pairs.jsonl last-but-one and stats.json last, as the completion mark."""
    out = Path(out_dir)
    for tree in result.trees:
        atomic_write_json(out / "trees" / _file_name(tree["task_id"]), tree)
    atomic_write_jsonl(out / "samples.jsonl", (s.to_dict() for s in result.samples))
    write_pairs(out / "pairs.jsonl", result.pairs)
    for name, artifact in result.artifacts.items():  # state for the next iteration (a knowledge graph)
        artifact.save(out / f"{name}.json")
    atomic_write_json(out / "stats.json", result.stats)


def read_samples(path: str | Path) -> list[Sample]:
    return [Sample.from_dict(row) for _, row in read_jsonl(path)]
