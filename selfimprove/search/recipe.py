"""Search recipes: a TOML table naming the search (`type = "mcts"`) and its settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from selfimprove.config import from_mapping, read_toml, to_mapping
from selfimprove.search.base import Search
from selfimprove.search.best_of_n import BestOfN, BestOfNConfig
from selfimprove.search.mcts import MCTS, MCTSConfig
from selfimprove.search.preflexor import PRefLexOR, PRefLexORConfig
from selfimprove.search.union import UnionConfig, UnionSearch

SEARCHES: dict[str, tuple[type, type]] = {
    "mcts": (MCTS, MCTSConfig),
    "best_of_n": (BestOfN, BestOfNConfig),
    "preflexor": (PRefLexOR, PRefLexORConfig),
    "union": (UnionSearch, UnionConfig),
}


def search_from_mapping(data: dict[str, Any], *, where: str) -> Search:
    """`{"type": "mcts", "simulations": 24, ...}` -> a configured search; errors name the key."""
    data = dict(data)
    kind = data.pop("type", "mcts")
    if kind not in SEARCHES:
        raise ValueError(f"{where}.type: unknown search {kind!r}; choose from {sorted(SEARCHES)}")
    search_cls, config_cls = SEARCHES[kind]
    return search_cls(from_mapping(config_cls, data, where=where))


def load_search(spec: str | Path) -> Search:
    """A search from a recipe path, or a built-in name (a key of SEARCHES) with default settings."""
    if str(spec) in SEARCHES:
        return search_from_mapping({"type": str(spec)}, where=str(spec))
    return search_from_mapping(read_toml(spec), where=str(spec))


def search_to_mapping(search: Search) -> dict[str, Any]:
    """The fully resolved recipe of a configured search (for the run's config.toml)."""
    return {"type": search.name, **to_mapping(search.config)}
