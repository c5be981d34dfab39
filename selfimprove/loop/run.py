"""The iterative self-improvement loop (DESIGN §1, §7): search -> pairs -> train -> eval, K times, resumable.

Iteration k starts from policy_{k-1} (the run's model for k = 1): it searches training tasks with that
policy, turns verified trees into pairs (or, for RFT, keeps the verified-correct samples), trains
policy_k with policy_{k-1} as the reference, and evaluates it on held-out tasks. Iteration 0 evaluates the
starting model, so every later number has its baseline in the same run.

Every phase writes its outputs atomically and then a marker (`<phase>.done`, the phase's metrics as
JSON). A phase with a marker is never redone; one without is redone from scratch, which is exact because
each phase depends only on its inputs and its seed. So a run killed at any instant and started again
with the same command ends with the same pairs and metrics as an uninterrupted one.
"""

from __future__ import annotations

import json
import logging
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selfimprove.config import dump_toml, parse_toml, read_toml, to_mapping
from selfimprove.io import atomic_write_json, atomic_write_jsonl, atomic_write_text
from selfimprove.loop.config import RunConfig
from selfimprove.tasks.recipe import format_prompt, load_recipe, load_tasks

logger = logging.getLogger(__name__)

PHASES = ("search", "train", "eval")

# progress(phase, iteration, done, total, info): the CLI turns these into progress bars
LoopProgress = Callable[[str, int, int, int, dict[str, Any]], None]


@dataclass(frozen=True)
class RunPaths:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.toml"

    @property
    def model(self) -> Path:
        return self.root / "model"

    def iteration(self, k: int) -> Path:
        return self.root / f"iter_{k:03d}"

    def marker(self, k: int, phase: str) -> Path:
        return self.iteration(k) / f"{phase}.done"

    def policy(self, k: int) -> Path:
        """The policy after iteration k (k = 0: the starting model)."""
        return self.model if k == 0 else self.iteration(k) / "checkpoint"


def _done(paths: RunPaths, k: int, phase: str) -> dict[str, Any] | None:
    marker = paths.marker(k, phase)
    return json.loads(marker.read_text()) if marker.exists() else None


def _mark(paths: RunPaths, k: int, phase: str, record: dict[str, Any]) -> dict[str, Any]:
    record = {"phase": phase, "iteration": k, **record}
    atomic_write_json(paths.marker(k, phase), record)
    return record


# ---------------------------------------------------------------------------------------------------------
# set-up


def prepare_run(config: RunConfig, run_dir: str | Path) -> RunPaths:
    """Create the run folder with its resolved config, or check that an existing one used the same config."""
    paths = RunPaths(Path(run_dir))
    resolved = to_mapping(config)
    if paths.config.exists():
        saved = read_toml(paths.config)
        if saved != parse_toml(dump_toml(resolved), where="resolved config"):
            diff = _diff_keys(saved, resolved)
            raise ValueError(
                f"{paths.config} was written by a different config (keys differ: {diff}); "
                "resume with the same options, or choose another --out"
            )
        logger.info("resuming run in %s", paths.root)
    else:
        paths.root.mkdir(parents=True, exist_ok=True)
        atomic_write_text(paths.config, dump_toml(resolved))
    return paths


def _diff_keys(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for key in sorted(set(a) | set(b)):
        name = f"{prefix}{key}"
        if isinstance(a.get(key), dict) and isinstance(b.get(key), dict):
            keys += _diff_keys(a[key], b[key], name + ".")
        elif a.get(key) != b.get(key):
            keys.append(name)
    return keys


def _materialise_model(config: RunConfig, paths: RunPaths) -> None:
    """run/model: a copy of the tiny model build, or pointer.json naming the user's model folder."""
    if (paths.model / "ready.json").exists():
        return
    shutil.rmtree(paths.model, ignore_errors=True)
    staging = paths.root / "model.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    if config.model.path:
        source = Path(config.model.path).resolve()
        if not (source / "config.json").exists():
            raise FileNotFoundError(
                f"model.path {source} has no config.json: give a Hugging Face model folder"
            )
        staging.mkdir(parents=True)
        atomic_write_json(staging / "pointer.json", {"path": str(source)})
    else:
        from selfimprove.policy.tiny import build_tiny_model

        shutil.copytree(build_tiny_model(config.model.preset), staging)
    atomic_write_json(staging / "ready.json", {"source": config.model.path or f"tiny:{config.model.preset}"})
    staging.rename(paths.model)


def resolve_model_path(path: Path) -> Path:
    """A policy folder, following run/model/pointer.json to the user's model."""
    pointer = path / "pointer.json"
    return Path(json.loads(pointer.read_text())["path"]) if pointer.exists() else path


# ---------------------------------------------------------------------------------------------------------
# the phases


def _training_tasks(config: RunConfig, recipe, k: int) -> list:
    """Tasks offered to the search in iteration k: a fresh seeded draw, equal numbers per step count."""
    counts = range(config.task.min_steps, config.task.max_steps + 1)
    per_count = -(-config.task.tasks_per_iteration // len(counts))
    seed = config.seed * 1_000 + k
    tasks = [t for s in counts for t in load_tasks(recipe, "train", per_count, seed=seed * 10 + s, steps=s)]
    random.Random(seed).shuffle(tasks)
    return tasks[: config.task.tasks_per_iteration]


def run_search_phase(
    config: RunConfig, paths: RunPaths, k: int, progress: LoopProgress | None
) -> dict[str, Any]:
    from selfimprove.policy.backends import open_policy
    from selfimprove.search.output import write_search_result
    from selfimprove.verify.registry import make_verifier

    recipe = load_recipe(config.task.recipe)
    tasks = _training_tasks(config, recipe, k)
    spec = config.scale.policy_spec(str(resolve_model_path(paths.policy(k - 1))))
    out = paths.iteration(k)

    def report(done: int, total: int, stats: dict[str, float]) -> None:
        if progress is not None:
            progress("search", k, stats["search/tokens"], config.token_budget, stats)

    seed = config.seed * 1_000 + k
    verifier = config.task.verifier_name(recipe.verifier)

    def prompt_fn(task):
        return format_prompt(recipe, task)

    search = config.make_search()
    if config.scale.search_workers:
        from selfimprove.search.ray_pool import RaySearchPool

        if hasattr(search, "with_artifacts"):
            raise ValueError(
                f"scale.search_workers={config.scale.search_workers}: the {config.search['type']!r} search "
                "keeps state across iterations (a knowledge graph) that the Ray pool does not gather yet; "
                "allowed: search_workers = 0 for this search"
            )

        # the pool keeps per-shard records under out/shards (its resume unit) and writes the gathered
        # result into `out` exactly as write_search_result does
        pool = RaySearchPool(spec, search, workers=config.scale.search_workers)
        result = pool.run(
            tasks,
            prompt_fn,
            verifier,
            seed=seed,
            out_dir=out,
            token_budget=config.token_budget,
            progress=report,
        )
    else:
        if k > 1 and hasattr(search, "with_artifacts"):
            # a search that keeps state across iterations (PRefLexOR's knowledge graph) resumes the last one's
            search = search.with_artifacts(paths.iteration(k - 1))
        result = search.run(
            open_policy(spec),
            make_verifier(verifier),
            tasks,
            prompt_fn,
            seed=seed,
            token_budget=config.token_budget,
            progress=report,
        )
        write_search_result(result, out)
    correct = sum(s.correct for s in result.samples)
    return {
        **result.stats,
        "search/samples": len(result.samples),
        "search/correct_samples": correct,
        "search/backend": spec.backend,
        # every phase opens the engine on the iteration's checkpoint: new weights arrive by reloading
        "search/weight_sync": "reload",
    }


def _rft_examples(out: Path) -> list[tuple[str, str]]:
    """Verified-correct samples, one per distinct (prompt, completion), for rejection-sampling fine-tuning."""
    from selfimprove.search.output import read_samples

    seen: set[tuple[str, str]] = set()
    examples = []
    for sample in read_samples(out / "samples.jsonl"):
        if sample.correct and (sample.prompt, sample.completion) not in seen:
            seen.add((sample.prompt, sample.completion))
            examples.append((sample.prompt, sample.completion))
    return examples


def run_train_phase(
    config: RunConfig, paths: RunPaths, k: int, progress: LoopProgress | None
) -> dict[str, Any]:
    from dataclasses import replace

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from selfimprove.records import read_pairs
    from selfimprove.train.sft import train_sft
    from selfimprove.train.trainer import train_preference

    out = paths.iteration(k)
    checkpoint, staging = out / "checkpoint", out / "checkpoint.tmp"
    shutil.rmtree(checkpoint, ignore_errors=True)
    shutil.rmtree(staging, ignore_errors=True)
    start_path = resolve_model_path(paths.policy(k - 1))
    model = AutoModelForCausalLM.from_pretrained(start_path)
    tokenizer = AutoTokenizer.from_pretrained(start_path)
    train_config = replace(config.train, seed=config.train.seed + config.seed * 1_000 + k)

    def report(step: int, total: int, metrics: dict[str, float]) -> None:
        if progress is not None:
            progress("train", k, step, total, metrics)

    if config.method == "rft":
        examples = _rft_examples(out)
        data_size = len(examples)
        if examples:
            result = train_sft(model, tokenizer, examples, train_config, out_dir=staging, progress=report)
    else:
        pairs = read_pairs(out / "pairs.jsonl")
        data_size = len(pairs)
        if pairs:
            result = train_preference(model, tokenizer, pairs, train_config, out_dir=staging, progress=report)
    if data_size == 0:  # nothing verified to learn from: the policy carries over unchanged
        logger.warning("iteration %d: no training data; the policy is carried over unchanged", k)
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        summary: dict[str, Any] = {"train/examples": 0, "train/steps": 0}
    else:
        atomic_write_jsonl(out / "train_metrics.jsonl", result.metrics)
        summary = {"train/examples": data_size, "train/steps": result.steps, "train/seconds": result.seconds}
        if result.metrics:
            summary |= {key: value for key, value in result.metrics[-1].items() if key != "step"}
    staging.rename(checkpoint)
    return summary


def run_eval_phase(
    config: RunConfig, paths: RunPaths, k: int, progress: LoopProgress | None
) -> dict[str, Any]:
    from selfimprove.eval.evaluate import evaluate
    from selfimprove.policy.backends import open_policy
    from selfimprove.verify.registry import make_verifier

    recipe = load_recipe(config.task.recipe)
    policy = open_policy(config.scale.policy_spec(str(resolve_model_path(paths.policy(k)))))

    def report(done: int, total: int, info: dict[str, float]) -> None:
        if progress is not None:
            progress("eval", k, done, total, info)

    report_ = evaluate(
        policy,
        recipe,
        verifier=make_verifier(config.task.verifier_name(recipe.verifier)),
        n=config.eval.n,
        k=config.eval.k,
        temperature=config.eval.temperature,
        max_new_tokens=config.eval.max_new_tokens,
        seed=recipe.seed,
        steps=config.eval.steps or None,
        progress=report,
    )
    atomic_write_json(paths.iteration(k) / "eval.json", report_.to_dict())
    return eval_summary(report_.to_dict(), recipe.hard_steps)


def eval_summary(report: dict[str, Any], hard_steps: int) -> dict[str, Any]:
    """Flat eval metrics for metrics.jsonl: overall and per step count, with the hard split singled out."""
    summary = {
        f"eval/{key}": value for key, value in report["overall"].items() if isinstance(value, int | float)
    }
    for group in report["by_steps"]:
        for key, value in group.items():
            if key != "steps" and isinstance(value, int | float):
                summary[f"eval/steps{group['steps']}/{key}"] = value
        if group["steps"] == hard_steps:
            summary["eval/hard/greedy"] = group["greedy"]
    return summary


# ---------------------------------------------------------------------------------------------------------
# the loop


def _write_metrics(paths: RunPaths, config: RunConfig) -> list[dict[str, Any]]:
    """metrics.jsonl rebuilt from the markers: one line per completed phase, never duplicated."""
    records = []
    for k in range(config.iterations + 1):
        for phase in ("eval",) if k == 0 else PHASES:
            record = _done(paths, k, phase)
            if record is not None:
                records.append(record)
    atomic_write_jsonl(paths.root / "metrics.jsonl", records)
    return records


def run_loop(
    config: RunConfig, run_dir: str | Path, *, progress: LoopProgress | None = None
) -> list[dict[str, Any]]:
    """Run (or resume) every phase of every iteration; returns the metrics records."""
    paths = prepare_run(config, run_dir)
    _materialise_model(config, paths)
    phase_functions = {"search": run_search_phase, "train": run_train_phase, "eval": run_eval_phase}
    for k in range(config.iterations + 1):
        for phase in ("eval",) if k == 0 else PHASES:
            if _done(paths, k, phase) is not None:
                continue
            if progress is not None:
                progress(phase, k, 0, 0, {})
            start = time.perf_counter()
            record = phase_functions[phase](config, paths, k, progress)
            _mark(paths, k, phase, {**record, "seconds": time.perf_counter() - start})
            _write_metrics(paths, config)
    records = _write_metrics(paths, config)
    from selfimprove.loop.report import write_report

    write_report(paths.root)
    return records
