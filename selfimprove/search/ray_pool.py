"""Distributed search with Ray: a pool of search workers over shards of the tasks, gathered into one folder.

Each worker is a Ray actor that opens its own policy from a PolicySpec (a model in its process, or a
client of a shared server) and runs the ordinary search on the shards it is given. A shard is one lockstep
wave of the single-process search: `trees_per_batch` consecutive tasks searched with seed + (index of the
shard's first task), which is exactly the wave the single-process search runs with that seed. So the pool
returns the same trees, pairs and samples as `search.run(policy, verifier, tasks, prompt_fn, seed=seed)`
in one process, whatever the number of workers and the order shards finish in (tests/test_ray_search.py).
A token budget keeps the same rule too: shards are taken in task order while the tokens of the shards
before them are under the budget; shards finished beyond that are kept on disk but not gathered.

Resumable per task: every finished shard writes one record per task (its tree, pairs and samples) to
`out/shards/`, then a shard record with its statistics. A restarted pool reads the finished shards and
searches only the rest. The unit of recomputation is the shard, because a wave's trees share generate
calls and random streams; with `trees_per_batch = 1` that is a single task. At the end the gathered result
is written as a single-process search writes it (trees/*.json, pairs.jsonl, samples.jsonl, stats.json).

Workers are placed with `num_cpus`/`num_gpus` per actor on whatever cluster Ray is initialised with
(`ray.init(address=...)`), or on a local one that Ray starts on first use.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selfimprove.io import atomic_write_json
from selfimprove.policy.backends import PolicySpec
from selfimprove.records import PreferencePair
from selfimprove.search.base import Sample, Search, SearchProgress, SearchResult
from selfimprove.search.output import write_search_result
from selfimprove.search.recipe import search_from_mapping, search_to_mapping
from selfimprove.tasks.task import Task
from selfimprove.verify.base import Verifier

logger = logging.getLogger(__name__)

SHARDS_DIR = "shards"
# counts that add up over shards; the rates are recomputed from the pool's wall time
_SUMMED_STATS = (
    "search/trees",
    "search/nodes",
    "search/solved",
    "search/tokens",
    "search/generate_calls",
    "search/pairs",
)


@dataclass(frozen=True)
class Shard:
    index: int  # position among the shards
    start: int  # index of its first task
    tasks: tuple[Task, ...]
    seed: int


def plan_shards(tasks: Sequence[Task], *, size: int, seed: int) -> list[Shard]:
    """Consecutive shards of `size` tasks; shard k starts at task k * size and searches with seed + start."""
    if size < 1:
        raise ValueError(f"shard size must be >= 1, got {size}")
    return [
        Shard(index=k, start=start, tasks=tuple(tasks[start : start + size]), seed=seed + start)
        for k, start in enumerate(range(0, len(tasks), size))
    ]


class _SearchWorker:
    """One Ray actor: a policy, a search and a verifier, opened once and reused for every shard."""

    def __init__(
        self, spec: PolicySpec, search: dict[str, Any], verifier: str | Verifier, threads: int
    ) -> None:
        import torch

        from selfimprove.policy.backends import open_policy
        from selfimprove.verify.registry import make_verifier

        if threads > 0:
            torch.set_num_threads(threads)  # CPU results must not depend on a worker's thread count
        self.policy = open_policy(spec)
        self.search = search_from_mapping(dict(search), where="search")
        self.verifier = make_verifier(verifier) if isinstance(verifier, str) else verifier

    def run(self, shard: Shard, prompt_fn: Callable[[Task], str]) -> SearchResult:
        return self.search.run(self.policy, self.verifier, list(shard.tasks), prompt_fn, seed=shard.seed)


class RaySearchPool:
    """`workers` Ray actors, each with its own policy, searching shards of a task list."""

    def __init__(
        self,
        policy: PolicySpec,
        search: Search,
        *,
        workers: int = 2,
        cpus_per_worker: float = 1.0,
        gpus_per_worker: float = 0.0,
        threads_per_worker: int = 1,
    ) -> None:
        """`threads_per_worker` torch CPU threads per worker (0 = torch's default)."""
        if workers < 1 or cpus_per_worker < 0 or gpus_per_worker < 0 or threads_per_worker < 0:
            raise ValueError(
                "need workers >= 1 and non-negative cpus_per_worker, gpus_per_worker, threads_per_worker; "
                f"got {workers}, {cpus_per_worker}, {gpus_per_worker}, {threads_per_worker}"
            )
        self.policy = policy
        self.search = search
        self.workers = workers
        self.cpus_per_worker = cpus_per_worker
        self.gpus_per_worker = gpus_per_worker
        self.threads_per_worker = threads_per_worker

    @property
    def shard_size(self) -> int:
        """The search's lockstep wave: its `trees_per_batch`."""
        size = getattr(self.search.config, "trees_per_batch", None)
        if not isinstance(size, int):
            raise ValueError(f"search {self.search.name!r} has no trees_per_batch to shard by")
        return size

    def run(
        self,
        tasks: Sequence[Task],
        prompt_fn: Callable[[Task], str],
        verifier: str | Verifier,
        *,
        seed: int,
        out_dir: str | Path,
        token_budget: int | None = None,
        progress: SearchProgress | None = None,
    ) -> SearchResult:
        """Search every task on the pool (or until `token_budget` tokens, at shard granularity), write the
        gathered result into `out_dir` and return it. `verifier` is a registry name ("math", "code") or a
        picklable Verifier; `prompt_fn` must be picklable by cloudpickle (a lambda over a recipe is)."""
        import ray

        start_time = time.perf_counter()
        out = Path(out_dir)
        ids = [task.id for task in tasks]
        if len(set(ids)) != len(ids):
            raise ValueError("task ids must be unique: each task's record is a file named by its id")
        shards = plan_shards(tasks, size=self.shard_size, seed=seed)
        mapping = search_to_mapping(self.search)
        results: dict[int, tuple[SearchResult, dict[str, float]]] = {}
        for shard in shards:
            loaded = _load_shard(out, shard, mapping)
            if loaded is not None:
                results[shard.index] = loaded
        resumed = len(results)
        if resumed:
            logger.info("resuming: %d of %d shards already searched in %s", resumed, len(shards), out)

        def budget_reached() -> bool:
            return _gathered(shards, results, token_budget)[1]

        pending = [s for s in shards if s.index not in results]
        if pending and not budget_reached():
            actor = ray.remote(num_cpus=self.cpus_per_worker, num_gpus=self.gpus_per_worker)(_SearchWorker)
            count = min(self.workers, len(pending))
            actors = [
                actor.remote(self.policy, mapping, verifier, self.threads_per_worker) for _ in range(count)
            ]
            prompt_ref = ray.put(prompt_fn)
            in_flight: dict[Any, tuple[Shard, Any]] = {}
            idle = list(actors)
            queue = list(pending)
            try:
                while queue or in_flight:
                    while queue and idle and not budget_reached():
                        shard, worker = queue.pop(0), idle.pop()
                        in_flight[worker.run.remote(shard, prompt_ref)] = (shard, worker)
                    if not in_flight:
                        break
                    (ref,), _ = ray.wait(list(in_flight), num_returns=1)
                    shard, worker = in_flight.pop(ref)
                    result = ray.get(ref)
                    results[shard.index] = (result, _save_shard(out, shard, mapping, result))
                    idle.append(worker)
                    chosen, final = _gathered(shards, results, token_budget)
                    if progress is not None:
                        done = sum(len(shards[i].tasks) for i in chosen)
                        progress(done, len(tasks), self._stats(results, chosen, start_time, resumed))
                    if final:  # the budget is spent: shards still running would not be gathered
                        break
            finally:
                for worker in actors:
                    ray.kill(worker)

        chosen, _ = _gathered(shards, results, token_budget)
        merged = SearchResult(
            trees=[tree for i in chosen for tree in results[i][0].trees],
            pairs=[pair for i in chosen for pair in results[i][0].pairs],
            samples=[sample for i in chosen for sample in results[i][0].samples],
            stats=self._stats(results, chosen, start_time, resumed),
        )
        write_search_result(merged, out)
        return merged

    def _stats(
        self,
        results: dict[int, tuple[SearchResult, dict[str, float]]],
        chosen: list[int],
        start: float,
        resumed: int,
    ) -> dict[str, float]:
        stats: dict[str, float] = {key: 0 for key in _SUMMED_STATS}
        for i in chosen:
            for key in _SUMMED_STATS:
                stats[key] += results[i][1].get(key, 0)
        seconds = time.perf_counter() - start
        return stats | {
            "search/seconds": seconds,
            "search/tokens_per_s": stats["search/tokens"] / seconds if seconds else 0.0,
            "search/nodes_per_s": stats["search/nodes"] / seconds if seconds else 0.0,
            "search/workers": self.workers,
            "search/shards": len(chosen),
            "search/shards_resumed": resumed,
        }


def _gathered(
    shards: Sequence[Shard], results: dict[int, tuple[SearchResult, dict[str, float]]], budget: int | None
) -> tuple[list[int], bool]:
    """(indices of the shards gathered so far, whether that list is final).

    The single-process rule: shards in task order, each taken while the tokens of those before it are under
    the budget. The list is final once it reaches the budget or the last shard; before that it stops at the
    first shard whose result is not in yet.
    """
    chosen, tokens = [], 0
    for shard in shards:
        if budget is not None and tokens >= budget:
            return chosen, True
        if shard.index not in results:
            return chosen, False
        chosen.append(shard.index)
        tokens += int(results[shard.index][1].get("search/tokens", 0))
    return chosen, True


# ---------------------------------------------------------------------------------------------------------
# per-task records on disk


def _task_file(out: Path, task_id: str) -> Path:
    return out / SHARDS_DIR / "tasks" / (re.sub(r"[^A-Za-z0-9._-]", "_", task_id) + ".json")


def _shard_file(out: Path, shard: Shard) -> Path:
    return out / SHARDS_DIR / f"shard_{shard.start:07d}.json"


def _save_shard(out: Path, shard: Shard, search: dict[str, Any], result: SearchResult) -> dict[str, float]:
    """One record per task, then the shard record (its completion mark); returns the shard's stats."""
    for task in shard.tasks:
        tree = next((t for t in result.trees if t["task_id"] == task.id), None)
        atomic_write_json(
            _task_file(out, task.id),
            {
                "task_id": task.id,
                "shard_start": shard.start,
                "tree": tree,
                "pairs": [p.to_dict() for p in result.pairs if p.metadata.get("task_id") == task.id],
                "samples": [s.to_dict() for s in result.samples if s.task_id == task.id],
            },
        )
    stats = dict(result.stats)
    atomic_write_json(
        _shard_file(out, shard),
        {
            "start": shard.start,
            "seed": shard.seed,
            "task_ids": [t.id for t in shard.tasks],
            "search": search,
            "stats": stats,
        },
    )
    return stats


def _load_shard(
    out: Path, shard: Shard, search: dict[str, Any]
) -> tuple[SearchResult, dict[str, float]] | None:
    """A finished shard from disk, or None when it must be searched (missing, or another search/seed)."""
    import json

    marker = _shard_file(out, shard)
    if not marker.exists():
        return None
    record = json.loads(marker.read_text(encoding="utf-8"))
    expected = [t.id for t in shard.tasks]
    if (
        record.get("seed") != shard.seed
        or record.get("task_ids") != expected
        or record.get("search") != search
    ):
        logger.warning("%s was written by another search, seed or task list; searching it again", marker)
        return None
    trees, pairs, samples = [], [], []
    for task in shard.tasks:
        path = _task_file(out, task.id)
        if not path.exists():
            return None
        row = json.loads(path.read_text(encoding="utf-8"))
        if row.get("tree") is not None:
            trees.append(row["tree"])
        pairs.extend(PreferencePair.from_dict(p) for p in row["pairs"])
        samples.extend(Sample.from_dict(s) for s in row["samples"])
    return SearchResult(trees=trees, pairs=pairs, samples=samples, stats=record["stats"]), record["stats"]
