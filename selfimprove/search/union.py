"""A union of searches: each member searches the same tasks on its share of the token budget, and their
trees, pairs and samples are put together (e.g. MCTS step pairs + PRefLexOR thinking pairs, issue #8).

Members run one after the other, in recipe order, each with its own seed; a member's tree keeps its
task's id prefixed by the member's name ("mcts/arith-train-...") so trees of the same task by two members
are two files and two entries in the viewer, and its pairs' `tree_id` follow. Samples keep their task ids,
so RFT sees every member's verified solutions of a task together.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selfimprove.policy.base import Policy
from selfimprove.records import PreferencePair
from selfimprove.search.base import Search, SearchProgress, SearchResult
from selfimprove.tasks.task import Task
from selfimprove.verify.base import Verifier

# summed over members; the rates are recomputed and every member's own keys kept as search/<member>/...
_ADDITIVE = (
    "search/trees",
    "search/nodes",
    "search/solved",
    "search/tokens",
    "search/generate_calls",
    "search/seconds",
    "search/pairs",
)
_SEED_STRIDE = 7_919  # member i searches with seed + i * stride, so members never share sampling noise


def _default_members() -> dict[str, dict[str, Any]]:
    return {"mcts": {"type": "mcts", "share": 0.5}, "preflexor": {"type": "preflexor", "share": 0.5}}


@dataclass(frozen=True)
class UnionConfig:
    # member name -> its search table (as in a search recipe) plus `share`, its fraction of the token budget
    members: dict[str, dict[str, Any]] = field(default_factory=_default_members)

    def __post_init__(self) -> None:
        from selfimprove.search.recipe import search_from_mapping, search_to_mapping

        if not isinstance(self.members, dict) or not self.members:
            raise ValueError(f"union.members must be a non-empty table of searches, got {self.members!r}")
        resolved: dict[str, dict[str, Any]] = {}
        owners: dict[str, str] = {}
        for name, table in self.members.items():
            where = f"union.members.{name}"
            if not isinstance(table, dict):
                raise ValueError(f"{where} must be a table, got {type(table).__name__} {table!r}")
            table = dict(table)
            share = table.pop("share", None)
            if isinstance(share, bool) or not isinstance(share, int | float) or not 0 < share <= 1:
                raise ValueError(f"{where}.share must be a number in (0, 1], got {share!r}")
            if table.get("type") == "union":
                raise ValueError(f"{where}.type: a union cannot hold another union")
            search = search_from_mapping(table, where=where)
            for artifact in getattr(search, "artifact_names", ()):
                if artifact in owners:
                    raise ValueError(
                        f"{where} and union.members.{owners[artifact]} both keep a {artifact!r}; "
                        "a union may hold one such search"
                    )
                owners[artifact] = name
            resolved[name] = {"share": float(share), **search_to_mapping(search)}
        total = sum(m["share"] for m in resolved.values())
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"union.members: the shares must sum to 1, got {total:g}")
        object.__setattr__(self, "members", resolved)


class UnionSearch:
    """Several searches on split budgets; `run` implements the Search protocol."""

    name = "union"

    def __init__(self, config: UnionConfig | None = None, *, members: Sequence[Search] | None = None) -> None:
        from selfimprove.search.recipe import search_from_mapping

        self.config = config or UnionConfig()
        if members is None:
            members = [
                search_from_mapping({k: v for k, v in table.items() if k != "share"}, where=name)
                for name, table in self.config.members.items()
            ]
        self.members: list[tuple[str, float, Search]] = [
            (name, table["share"], search)
            for (name, table), search in zip(self.config.members.items(), members, strict=True)
        ]

    @property
    def artifact_names(self) -> tuple[str, ...]:
        return tuple(a for _, _, s in self.members for a in getattr(s, "artifact_names", ()))

    def with_artifacts(self, folder: str | Path) -> UnionSearch:
        """The union whose members that keep state start from what a previous run saved in `folder`."""
        members = [
            s.with_artifacts(folder) if hasattr(s, "with_artifacts") else s for _, _, s in self.members
        ]
        return UnionSearch(self.config, members=members)

    def run(
        self,
        policy: Policy,
        verifier: Verifier,
        tasks: Sequence[Task],
        prompt_fn: Callable[[Task], str],
        *,
        seed: int,
        token_budget: int | None = None,
        progress: SearchProgress | None = None,
    ) -> SearchResult:
        results: list[tuple[str, SearchResult]] = []
        total = len(tasks) * len(self.members)
        for index, (name, share, search) in enumerate(self.members):
            budget = None if token_budget is None else max(1, int(token_budget * share))

            def report(done: int, _total: int, stats: dict[str, float], name: str = name) -> None:
                if progress is not None:
                    finished = [r.stats for _, r in results]
                    progress(
                        len(results) * len(tasks) + done,
                        total,
                        union_stats([*[n for n, _ in results], name], [*finished, stats]),
                    )

            result = search.run(
                policy,
                verifier,
                tasks,
                prompt_fn,
                seed=seed + index * _SEED_STRIDE,
                token_budget=budget,
                progress=report,
            )
            results.append((name, result))
        return SearchResult(
            trees=[_member_tree(name, tree) for name, r in results for tree in r.trees],
            pairs=[_member_pair(name, pair) for name, r in results for pair in r.pairs],
            samples=[s for _, r in results for s in r.samples],
            stats=union_stats([n for n, _ in results], [r.stats for _, r in results]),
            artifacts={k: v for _, r in results for k, v in r.artifacts.items()},
        )


def _member_tree(name: str, tree: dict[str, Any]) -> dict[str, Any]:
    return {**tree, "task_id": f"{name}/{tree['task_id']}", "member": name}


def _member_pair(name: str, pair: PreferencePair) -> PreferencePair:
    tree_id = pair.metadata.get("tree_id", pair.metadata.get("task_id"))
    metadata = {**pair.metadata, "member": name}
    if tree_id is not None:
        metadata["tree_id"] = f"{name}/{tree_id}"
    return PreferencePair(
        pair.prompt, pair.chosen, pair.rejected, pair.chosen_eos, pair.rejected_eos, metadata
    )


def union_stats(names: Sequence[str], stats: Sequence[dict[str, float]]) -> dict[str, float]:
    """Totals of the additive keys, throughput recomputed, and each member's keys as search/<name>/..."""
    out: dict[str, float] = {key: sum(s.get(key, 0) for s in stats) for key in _ADDITIVE}
    seconds = out["search/seconds"]
    out["search/tokens_per_s"] = out["search/tokens"] / seconds if seconds else 0.0
    out["search/nodes_per_s"] = out["search/nodes"] / seconds if seconds else 0.0
    for name, member in zip(names, stats, strict=True):
        for key, value in member.items():
            out[f"search/{name}/{key.removeprefix('search/')}"] = value
    return out
