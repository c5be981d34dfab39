"""The run report: report.md with per-iteration held-out accuracy, pairs, tokens and time, plus PNG plots.

Everything is read back from the run folder (markers and eval.json files), so a report can be rebuilt at
any time and several runs can be compared side by side (`selfimprove compare`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selfimprove.config import read_toml
from selfimprove.io import atomic_write_text


@dataclass(frozen=True)
class IterationRow:
    iteration: int
    evaluation: dict[str, Any] | None  # eval.json
    search: dict[str, Any] | None  # search.done
    train: dict[str, Any] | None  # train.done
    eval_seconds: float | None


@dataclass(frozen=True)
class RunSummary:
    path: Path
    config: dict[str, Any]
    rows: list[IterationRow]

    @property
    def label(self) -> str:
        search = self.config.get("search", {}).get("type", "?")
        return f"{self.path.name} ({search}+{self.config.get('method', '?')})"

    @property
    def hard_steps(self) -> int:
        from selfimprove.tasks.recipe import load_recipe

        return load_recipe(self.config.get("task", {}).get("recipe", "arith")).hard_steps

    def greedy_series(self, steps: int | None) -> list[tuple[int, float]]:
        """(iteration, greedy accuracy) on `steps` (None: overall) for every evaluated iteration."""
        series = []
        for row in self.rows:
            if row.evaluation is None:
                continue
            block = row.evaluation["overall"] if steps is None else by_steps(row.evaluation).get(steps)
            if block is not None:
                series.append((row.iteration, block["greedy"]))
        return series


def by_steps(evaluation: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """An eval.json's per-step-count groups keyed by step count."""
    return {group["steps"]: group for group in evaluation["by_steps"] if group["steps"] is not None}


def _read_json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.exists() else None


def load_run(path: str | Path) -> RunSummary:
    root = Path(path)
    if not (root / "config.toml").exists():
        raise FileNotFoundError(f"{root} is not a run folder (no config.toml)")
    config = read_toml(root / "config.toml")
    rows = []
    for k in range(int(config.get("iterations", 0)) + 1):
        folder = root / f"iter_{k:03d}"
        eval_marker = _read_json(folder / "eval.done")
        rows.append(
            IterationRow(
                iteration=k,
                evaluation=_read_json(folder / "eval.json") if eval_marker else None,
                search=_read_json(folder / "search.done"),
                train=_read_json(folder / "train.done"),
                eval_seconds=eval_marker.get("seconds") if eval_marker else None,
            )
        )
    return RunSummary(root, config, rows)


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def _accuracy_table(run: RunSummary) -> list[str]:
    steps = sorted({s for row in run.rows if row.evaluation for s in by_steps(row.evaluation)})
    header = ["iter", "greedy", *[f"greedy {s}-step" for s in steps], "maj@k", "pass@k"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in run.rows:
        if row.evaluation is None:
            continue
        overall = row.evaluation["overall"]
        groups = by_steps(row.evaluation)
        cells = [
            str(row.iteration),
            _pct(overall["greedy"]),
            *[_pct(groups[s]["greedy"]) if s in groups else "–" for s in steps],
            _pct(overall["maj_at_k"]),
            _pct(overall["pass_at_k"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _search_table(run: RunSummary) -> list[str]:
    header = [
        "iter",
        "trees",
        "solved",
        "pairs",
        "correct samples",
        "tokens",
        "search s",
        "train steps",
        "train s",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in run.rows:
        if row.search is None:
            continue
        s, t = row.search, row.train or {}
        cells = [
            str(row.iteration),
            str(s.get("search/trees", "–")),
            str(s.get("search/solved", "–")),
            str(s.get("search/pairs", "–")),
            str(s.get("search/correct_samples", "–")),
            f"{s.get('search/tokens', 0):,}",
            f"{s.get('seconds', 0):.0f}",
            str(t.get("train/steps", "–")),
            f"{t['seconds']:.0f}" if "seconds" in t else "–",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _line_plot(lines: list[tuple[str, list[tuple[int, float]]]], out: Path, title: str) -> None:
    """Greedy accuracy (%) against iteration, one line per (label, series)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(6, 4))
    for label, series in lines:
        if series:
            ax.plot([i for i, _ in series], [100 * a for _, a in series], marker="o", label=label)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("iteration")
    ax.set_ylabel("greedy accuracy (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def plot_accuracy(runs: list[RunSummary], out: Path, *, steps: int | None, title: str) -> None:
    """Greedy held-out accuracy per iteration, one line per run."""
    _line_plot([(run.label, run.greedy_series(steps)) for run in runs], out, title)


def plot_by_steps(run: RunSummary, out: Path) -> None:
    """Greedy held-out accuracy per iteration, one line per step count."""
    steps = sorted({s for row in run.rows if row.evaluation for s in by_steps(row.evaluation)})
    lines = [(f"{s} steps", run.greedy_series(s)) for s in steps]
    _line_plot(lines, out, f"{run.path.name}: held-out accuracy by difficulty")


def write_report(run_dir: str | Path, baselines: list[str | Path] = ()) -> Path:
    """report.md + accuracy.png (+ compare.png with baselines) in the run folder."""
    run = load_run(run_dir)
    others = [load_run(b) for b in baselines]
    plot_by_steps(run, run.path / "accuracy.png")
    lines = [
        f"# Run {run.path.name}",
        "",
        f"search `{run.config.get('search', {}).get('type')}`, method `{run.config.get('method')}`, "
        f"{run.config.get('iterations')} iterations, "
        f"token budget {run.config.get('token_budget'):,} per iteration, "
        f"seed {run.config.get('seed')}. Full config: `config.toml`; every event: `metrics.jsonl`.",
        "",
        "## Held-out accuracy (%)",
        "",
        "Iteration 0 is the starting model. maj@k and pass@k use k samples at the eval temperature.",
        "",
        *_accuracy_table(run),
        "",
        "![accuracy by difficulty](accuracy.png)",
        "",
        "## Search and training",
        "",
        *_search_table(run),
        "",
    ]
    if others:
        hard = run.hard_steps
        plot_accuracy(
            [run, *others], run.path / "compare.png", steps=hard, title=f"{hard}-step held-out, greedy"
        )
        lines += [
            "## Compared with baselines",
            "",
            *compare_table([run, *others]),
            "",
            "![compare](compare.png)",
            "",
        ]
    if any((run.path / f"iter_{row.iteration:03d}" / "trees").exists() for row in run.rows):
        lines += ["Search trees: open `viewer.html` (made by `selfimprove viz " + str(run.path) + "`).", ""]
    out = run.path / "report.md"
    atomic_write_text(out, "\n".join(lines))
    return out


def compare_table(runs: list[RunSummary]) -> list[str]:
    """Greedy accuracy on the hard split (and overall) per iteration, one row per run."""
    iterations = max(len(r.rows) for r in runs)
    header = ["run", *[f"iter {k}" for k in range(iterations)], "overall (last)", "tokens"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for run in runs:
        hard = dict(run.greedy_series(run.hard_steps))
        overall = run.greedy_series(None)
        tokens = sum((row.search or {}).get("search/tokens", 0) for row in run.rows)
        cells = [
            run.label,
            *[_pct(hard.get(k)) for k in range(iterations)],
            _pct(overall[-1][1] if overall else None),
            f"{tokens:,}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines
