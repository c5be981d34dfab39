"""The loop end to end on the smoke preset: a complete run folder, config errors, and resume after SIGKILL."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from selfimprove.loop.cli import add_arguments, resolve_run_config
from selfimprove.loop.config import resolve_config
from selfimprove.records import read_pairs
from selfimprove.search.recipe import load_search

# timing fields legitimately differ between two runs of the same seed; everything else must not
_TIMING = ("seconds", "tokens_per_s", "nodes_per_s")

_RUN_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    from selfimprove.loop.config import resolve_config
    from selfimprove.loop.run import run_loop

    out, kill_phase, kill_at = sys.argv[1], sys.argv[2], int(sys.argv[3])

    def progress(phase, iteration, done, total, info):
        # SIGKILL ourselves at a precise point: no handler, no cleanup, like a crash or an OOM kill
        if phase == kill_phase and iteration == 1 and done >= kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    run_loop(resolve_config("smoke"), out, progress=progress)
    """
)


def _run(out: Path, kill_phase: str = "none", kill_at: int = 0) -> int:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-c", _RUN_SCRIPT, str(out), kill_phase, str(kill_at)],
        check=False,
        timeout=600,
        env=env,
    ).returncode


def _strip_timing(record: dict) -> dict:
    return {k: v for k, v in record.items() if not any(k.endswith(t) for t in _TIMING)}


def _metrics(run: Path) -> list[dict]:
    return [_strip_timing(json.loads(line)) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory, trained_tiny_path) -> Path:
    out = tmp_path_factory.mktemp("runs") / "uninterrupted"
    assert _run(out) == 0
    return out


def test_smoke_run_folder_is_complete(reference_run: Path):
    run = reference_run
    for name in ("config.toml", "metrics.jsonl", "report.md", "accuracy.png", "model/config.json"):
        assert (run / name).exists(), name
    it = run / "iter_001"
    for name in ("pairs.jsonl", "samples.jsonl", "stats.json", "eval.json", "checkpoint/model.safetensors"):
        assert (it / name).exists(), name
    assert list((it / "trees").glob("*.json"))
    assert (run / "iter_000" / "eval.json").exists()
    phases = [(m["iteration"], m["phase"]) for m in _metrics(run)]
    assert phases == [(0, "eval"), (1, "search"), (1, "train"), (1, "eval")]
    report = (run / "report.md").read_text()
    assert "Held-out accuracy" in report and "| 1 |" in report


def test_pairs_load_with_the_standard_fields(reference_run: Path):
    path = reference_run / "iter_001" / "pairs.jsonl"
    pairs = read_pairs(path)
    assert pairs, "the smoke search should find at least one pair"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert all({"prompt", "chosen", "rejected"} <= set(row) for row in rows)
    datasets = pytest.importorskip("datasets")
    dataset = datasets.load_dataset("json", data_files=str(path), split="train")
    assert dataset.num_rows == len(pairs)
    assert dataset[0]["prompt"] == pairs[0].prompt


@pytest.mark.parametrize(
    ("phase", "at"),
    [
        ("search", 1),  # after the first lockstep wave of trees, before the search is written
        ("train", 0),  # between pairs and training: pairs written, training not started
        ("train", 1),  # during training, after the first of at least two optimizer steps
        ("eval", 1),  # during the held-out evaluation
    ],
)
def test_resume_after_sigkill_matches_uninterrupted(tmp_path: Path, reference_run: Path, phase: str, at: int):
    out = tmp_path / "killed"
    assert _run(out, phase, at) == -9  # killed by SIGKILL where we asked
    assert not (out / "iter_001" / "eval.done").exists()
    assert _run(out) == 0  # the same command resumes
    assert _metrics(out) == _metrics(reference_run)
    resumed = (out / "iter_001" / "pairs.jsonl").read_text()
    assert resumed == (reference_run / "iter_001" / "pairs.jsonl").read_text()
    assert not list(out.rglob("*.tmp*")), "no temporary files left behind"


def test_resume_refuses_a_different_config(tmp_path: Path, reference_run: Path):
    from selfimprove.loop.run import prepare_run

    config = resolve_config("smoke", overrides={"seed": 5})
    with pytest.raises(ValueError, match="seed"):
        prepare_run(config, reference_run)


def test_the_shipped_configs_and_searches_resolve():
    repo = Path(__file__).resolve().parents[1]
    for search in sorted((repo / "searches").glob("*.toml")):
        assert load_search(search).name, search
    for config in sorted((repo / "configs").glob("*.toml")):
        assert resolve_config("default", config).iterations >= 1, config
    work = resolve_config("default", repo / "configs" / "tiny_work.toml")
    caps = (work.search["max_step_tokens"], work.search["max_rollout_tokens"], work.eval.max_new_tokens)
    assert work.model.preset == "tiny-work" and caps == (96, 384, 512)
    assert load_search(repo / "searches" / "best_of_n_work.toml").config.max_new_tokens == 384


def test_a_baseline_run_from_the_cli_gets_its_own_folder_name():
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    repo = Path(__file__).resolve().parents[1]

    def name(*argv: str) -> str:
        return resolve_run_config(parser.parse_args(list(argv))).name

    best_of_n = str(repo / "searches" / "best_of_n.toml")
    assert name() == "default"
    assert name("--search", best_of_n) == "default-best_of_n"
    assert name("--search", best_of_n, "--method", "rft") == "default-best_of_n-rft"
    assert name("--search", "mcts", "--preset", "smoke") == "smoke-mcts"
    work = ("--config", str(repo / "configs" / "tiny_work.toml"))
    config = resolve_run_config(
        parser.parse_args([*work, "--search", str(repo / "searches" / "best_of_n_work.toml")])
    )
    assert config.name == "tiny-work-best_of_n_work" and config.search["max_new_tokens"] == 384
    # a config file without a `name` is named after itself: no two shipped configs share a run folder
    preflexor = ("--config", str(repo / "configs" / "preflexor.toml"))
    assert name(*preflexor) == "preflexor"
    mcts_thinking = str(repo / "searches" / "mcts_thinking.toml")
    assert name(*preflexor, "--search", mcts_thinking) == "preflexor-mcts_thinking"
    names = [resolve_config("default", c).name for c in sorted((repo / "configs").glob("*.toml"))]
    assert len(set(names)) == len(names) and "default" not in names, names


def test_config_errors_name_the_key(tmp_path: Path):
    with pytest.raises(ValueError, match=r"train: unknown key\(s\) \['bogus'\]"):
        resolve_config("smoke", overrides={"train": {"bogus": 1}})
    with pytest.raises(TypeError, match=r"search\.simulations: expected an integer"):
        resolve_config("smoke", overrides={"search": {"type": "mcts", "simulations": "many"}})
    with pytest.raises(ValueError, match=r"search\.type: unknown search 'beam'"):
        resolve_config("smoke", overrides={"search": {"type": "beam"}})
    with pytest.raises(ValueError, match="method 'ppo' is not allowed"):
        resolve_config("smoke", overrides={"method": "ppo"})
    with pytest.raises(ValueError, match=r"scale\.policy: backend='tgi' is not allowed"):
        resolve_config("smoke", overrides={"scale": {"policy": {"backend": "tgi"}}})
    with pytest.raises(ValueError, match=r"scale\.policy: unknown key\(s\) \['port'\]"):
        resolve_config("smoke", overrides={"scale": {"policy": {"port": 8000}}})
    with pytest.raises(ValueError, match=r"task\.verifier='exact'; choose from \['math', 'math-answer'"):
        resolve_config("smoke", overrides={"task": {"verifier": "exact"}})
    with pytest.raises(ValueError, match="search_workers must be >= 0"):
        resolve_config("smoke", overrides={"scale": {"search_workers": -1}})
    bad = tmp_path / "bad.toml"
    bad.write_text("[eval]\nn = 0\n")
    with pytest.raises(ValueError, match=r"bad\.toml.*n >= 1"):
        resolve_config("smoke", bad)
    with pytest.raises(ValueError, match="unknown preset"):
        resolve_config("huge")
