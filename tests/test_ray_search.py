"""Distributed search on a local Ray cluster equals the single-process search: same seeds, same trees,
pairs and samples, whatever the number of workers; a restarted pool resumes from the finished shards."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="distributed search needs Ray (pip install 'selfimprove[ray]')")

from selfimprove.loop.config import resolve_config  # noqa: E402
from selfimprove.loop.run import _materialise_model, prepare_run, run_search_phase  # noqa: E402
from selfimprove.policy.backends import PolicySpec  # noqa: E402
from selfimprove.policy.hf import HFPolicy  # noqa: E402
from selfimprove.search.mcts import MCTS, MCTSConfig  # noqa: E402
from selfimprove.search.output import write_search_result  # noqa: E402
from selfimprove.search.ray_pool import RaySearchPool, plan_shards  # noqa: E402
from selfimprove.tasks.recipe import format_prompt, load_recipe, load_tasks  # noqa: E402
from selfimprove.verify.registry import make_verifier  # noqa: E402

SEARCH = MCTS(
    MCTSConfig(
        simulations=4,
        children=2,
        rollouts=1,
        max_step_tokens=16,
        max_rollout_tokens=48,
        trees_per_batch=2,
        margin=0.0,
        pair_kinds=("step", "full"),
    )
)


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def setting(trained_tiny_path: Path):
    recipe = load_recipe("arith")
    # four problems of which the small test model solves one in this search (so there are pairs to compare)
    tasks = load_tasks(recipe, "train", 40, seed=0, steps=1)[22:26]
    return tasks, (lambda task: format_prompt(recipe, task))


def _json(value):
    return json.loads(json.dumps(value))


def _same(pool_result, single_result) -> None:
    assert _json(pool_result.trees) == _json(single_result.trees)
    assert pool_result.pairs == single_result.pairs
    assert pool_result.samples == single_result.samples
    for key in (
        "search/trees",
        "search/nodes",
        "search/solved",
        "search/tokens",
        "search/generate_calls",
        "search/pairs",
    ):
        assert pool_result.stats[key] == single_result.stats[key], key


def test_pool_of_two_workers_equals_single_process_search(
    cluster, setting, trained_tiny_path, tmp_path
) -> None:
    tasks, prompt_fn = setting
    policy = HFPolicy.from_pretrained(trained_tiny_path, device="cpu")
    single = SEARCH.run(policy, make_verifier("math"), tasks, prompt_fn, seed=27)
    assert len(single.trees) == 4 and single.stats["search/nodes"] > 4 * 4
    assert (
        single.pairs and any(s.correct for s in single.samples) and not all(s.correct for s in single.samples)
    )

    pool = RaySearchPool(
        PolicySpec(backend="hf", path=str(trained_tiny_path), device="cpu"), SEARCH, workers=2
    )
    seen: list[int] = []
    out = tmp_path / "pool"
    result = pool.run(tasks, prompt_fn, "math", seed=27, out_dir=out, progress=lambda d, t, s: seen.append(d))
    _same(result, single)
    assert result.stats["search/shards"] == 2 and result.stats["search/shards_resumed"] == 0
    assert seen[-1] == 4 and seen == sorted(seen)

    # the run folder holds what a single-process search writes, file for file
    write_search_result(single, tmp_path / "single")
    for name in ("pairs.jsonl", "samples.jsonl"):
        assert (out / name).read_text() == (tmp_path / "single" / name).read_text()
    trees = sorted(p.name for p in (tmp_path / "single" / "trees").iterdir())
    assert sorted(p.name for p in (out / "trees").iterdir()) == trees
    for name in trees:
        assert (out / "trees" / name).read_text() == (tmp_path / "single" / "trees" / name).read_text()

    # a second run finds every shard on disk and starts no worker; under a token budget that the first
    # shard reaches it gathers that shard only, as one process stops after its first wave
    budget = 1
    limited = pool.run(tasks, prompt_fn, "math", seed=27, out_dir=out, token_budget=budget)
    _same(limited, SEARCH.run(policy, make_verifier("math"), tasks, prompt_fn, seed=27, token_budget=budget))
    assert limited.stats["search/shards_resumed"] == 2 and limited.stats["search/shards"] == 1
    assert len(limited.trees) == 2


@pytest.mark.slow  # one more Ray worker start (~10 s on 2 busy cores)
def test_a_restarted_pool_searches_only_the_missing_shard(
    cluster, setting, trained_tiny_path, tmp_path
) -> None:
    tasks, prompt_fn = setting
    pool = RaySearchPool(PolicySpec(path=str(trained_tiny_path), device="cpu"), SEARCH, workers=2)
    first = pool.run(tasks, prompt_fn, "math", seed=9, out_dir=tmp_path)
    last = plan_shards(tasks, size=2, seed=9)[-1]
    (tmp_path / "shards" / f"shard_{last.start:07d}.json").unlink()  # as if killed before it was marked
    shutil.rmtree(tmp_path / "trees")
    resumed = RaySearchPool(pool.policy, SEARCH, workers=1).run(
        tasks, prompt_fn, "math", seed=9, out_dir=tmp_path
    )
    _same(resumed, first)
    assert resumed.stats["search/shards_resumed"] == 1 and len(list((tmp_path / "trees").iterdir())) == 4


def test_shards_follow_the_lockstep_waves() -> None:
    tasks = load_tasks(load_recipe("arith"), "train", 5, seed=0, steps=1)
    shards = plan_shards(tasks, size=2, seed=10)
    assert [(s.start, len(s.tasks), s.seed) for s in shards] == [(0, 2, 10), (2, 2, 12), (4, 1, 14)]
    with pytest.raises(ValueError, match="shard size must be >= 1"):
        plan_shards(tasks, size=0, seed=0)
    with pytest.raises(ValueError, match="task ids must be unique"):
        RaySearchPool(PolicySpec(path="unused"), SEARCH).run(
            [tasks[0], tasks[0]], str, "math", seed=0, out_dir="x"
        )


def test_loop_search_phase_on_ray_workers_writes_what_the_in_process_phase_writes(
    cluster, trained_tiny_path, tmp_path
) -> None:
    """`[scale] search_workers = 2` in a run config: the iteration folder equals the one-process run's."""
    overrides = {
        "model": {"path": str(trained_tiny_path)},
        "task": {"tasks_per_iteration": 4},
        "search": {"type": "mcts", "simulations": 4, "children": 2, "rollouts": 1, "trees_per_batch": 2},
        "scale": {"policy": {"device": "cpu"}},
    }
    folders = {}
    for workers in (0, 2):
        config = resolve_config(
            "smoke", overrides={**overrides, "scale": {**overrides["scale"], "search_workers": workers}}
        )
        paths = prepare_run(config, tmp_path / f"workers{workers}")
        _materialise_model(config, paths)  # run/model points at the test model
        stats = run_search_phase(config, paths, 1, None)
        assert stats["search/backend"] == "hf" and stats["search/weight_sync"] == "reload"
        assert stats["search/trees"] == 4
        folders[workers] = paths.iteration(1)
    assert (folders[2] / "shards").is_dir() and not (folders[0] / "shards").exists()
    for name in ("pairs.jsonl", "samples.jsonl"):
        assert (folders[2] / name).read_text() == (folders[0] / name).read_text()
    trees = sorted(p.name for p in (folders[0] / "trees").iterdir())
    assert len(trees) == 4 and sorted(p.name for p in (folders[2] / "trees").iterdir()) == trees
