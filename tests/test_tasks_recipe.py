"""Task recipes: built-ins, TOML files, validation errors that name the key, task loading, the preview CLI."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from selfimprove.cli import main as cli_main
from selfimprove.tasks.recipe import (
    TaskRecipe,
    format_prompt,
    load_recipe,
    load_tasks,
    recipe_from_dict,
    recipe_to_dict,
)
from selfimprove.tasks.task import Task

REPO = Path(__file__).resolve().parents[1]
GSM8K = REPO.parent / "shared" / "data" / "gsm8k"
needs_gsm8k = pytest.mark.skipif(not (GSM8K / "test.jsonl").is_file(), reason=f"GSM8K data not at {GSM8K}")

_GSM8K_ROWS = [
    {"question": "One?", "answer": "2+2=<<2+2=4>>4\n#### 4"},
    {"question": "Two?", "answer": "2*3=<<2*3=6>>6\n6+1=<<6+1=7>>7\n#### 7"},
    {"question": "Three?", "answer": "1+1=<<1+1=2>>2\n2+1=<<2+1=3>>3\n#### 3"},
    {"question": "Four?", "answer": "5-1=<<5-1=4>>4\n4*2=<<4*2=8>>8\n#### 8"},
    {"question": "Five?", "answer": "9/3=<<9/3=3>>3\n#### 3"},
]


def _gsm8k_recipe(tmp_path: Path) -> TaskRecipe:
    (tmp_path / "data").mkdir()
    rows = "".join(json.dumps(r) + "\n" for r in _GSM8K_ROWS)
    (tmp_path / "data" / "train.jsonl").write_text(rows, encoding="utf-8")
    (tmp_path / "data" / "test.jsonl").write_text(rows, encoding="utf-8")
    recipe_dir = tmp_path / "recipes"
    recipe_dir.mkdir()
    path = recipe_dir / "mine.toml"
    path.write_text(
        'source = "gsm8k"\ntrain_path = "../data/train.jsonl"\ntest_path = "../data/test.jsonl"\n',
        encoding="utf-8",
    )
    return load_recipe(path)


def test_builtin_arith_equals_the_repository_recipe_file() -> None:
    assert load_recipe("arith") == load_recipe(REPO / "tasks" / "arith.toml")
    assert load_recipe(str(REPO / "tasks" / "arith.toml")) == TaskRecipe(name="arith", source="arith")


def test_gsm8k_recipe_file_resolves_paths_against_its_folder() -> None:
    recipe = load_recipe(REPO / "tasks" / "gsm8k.toml")
    assert recipe.source == "gsm8k" and recipe.name == "gsm8k"
    assert Path(recipe.train_path) == (REPO / "tasks" / "../../shared/data/gsm8k/train.jsonl").resolve()
    assert Path(recipe.test_path) == (REPO / "tasks" / "../../shared/data/gsm8k/test.jsonl").resolve()


@needs_gsm8k
def test_gsm8k_recipe_file_loads_the_shared_data() -> None:
    recipe = load_recipe(REPO / "tasks" / "gsm8k.toml")
    assert len(load_tasks(recipe, "test")) == 1319
    assert {t.steps for t in load_tasks(recipe, "test", steps=3)} == {3}


def test_relative_paths_filters_and_sampling(tmp_path: Path) -> None:
    recipe = _gsm8k_recipe(tmp_path)
    assert recipe.name == "mine"  # defaults to the file name
    assert recipe.train_path == str((tmp_path / "data" / "train.jsonl").resolve())
    assert [t.question for t in load_tasks(recipe, "test")] == ["One?", "Two?", "Three?", "Four?", "Five?"]
    assert [t.question for t in load_tasks(recipe, "train", steps=2)] == ["Two?", "Three?", "Four?"]
    assert [t.question for t in load_tasks(recipe, "test", 2)] == ["One?", "Two?"]
    sample = load_tasks(recipe, "test", 3, seed=7)
    assert sample == load_tasks(recipe, "test", 3, seed=7) and len(sample) == 3
    assert [t.metadata["line"] for t in sample] == sorted(t.metadata["line"] for t in sample)  # file order
    assert len({tuple(t.id for t in load_tasks(recipe, "test", 3, seed=s)) for s in range(10)}) > 1
    assert len(load_tasks(recipe, "test", 50)) == 5
    with pytest.raises(ValueError, match="split='val'; allowed for source 'gsm8k': train, test"):
        load_tasks(recipe, "val")


def test_builtin_gsm8k_without_paths_says_what_to_set() -> None:
    with pytest.raises(ValueError, match="has no test_path: set train_path and test_path"):
        load_tasks(load_recipe("gsm8k"), "test", 3)


def test_arith_tasks_follow_the_recipe() -> None:
    recipe = TaskRecipe(name="a", source="arith", train_min_steps=2, train_max_steps=3, seed=4)
    train = load_tasks(recipe, "train", 200)
    assert {t.steps for t in train} == {2, 3} and {t.metadata["split"] for t in train} == {"train"}
    assert load_tasks(recipe, "train", 20, seed=4) == train[:20]
    assert load_tasks(recipe, "train", 20, seed=5) != train[:20]
    hard = load_tasks(recipe, "test", 30, steps=6)
    assert {t.steps for t in hard} == {6} and {t.metadata["split"] for t in hard} == {"test"}
    assert {t.metadata["split"] for t in load_tasks(recipe, "val", 5)} == {"val"}
    with pytest.raises(ValueError, match="pass n"):
        load_tasks(recipe, "train")
    with pytest.raises(ValueError, match=r"steps=9; allowed: 1\.\.8"):
        load_tasks(recipe, "test", 3, steps=9)


def test_format_prompt_keeps_braces_in_questions_literal() -> None:
    task = Task(id="t", question="What is {x} + 1?", answer="2")
    assert format_prompt(load_recipe("arith"), task) == "Question: What is {x} + 1?\nAnswer:\n"
    custom = TaskRecipe(name="c", source="arith", prompt_template="Q: {question}\nA {{brace}}:")
    assert format_prompt(custom, task) == "Q: What is {x} + 1?\nA {brace}:"


def test_recipe_to_dict_round_trips_and_serialises() -> None:
    for recipe in (load_recipe("arith"), load_recipe("gsm8k"), load_recipe(REPO / "tasks" / "gsm8k.toml")):
        data = recipe_to_dict(recipe)
        assert recipe_from_dict(json.loads(json.dumps(data))) == recipe
    assert "train_path" not in recipe_to_dict(load_recipe("gsm8k"))  # None left out: TOML has no null
    assert recipe_to_dict(load_recipe("arith"))["eval_steps"] == [1, 2, 3, 4]


def test_unknown_key_names_the_key_and_file(tmp_path: Path) -> None:
    path = tmp_path / "typo.toml"
    path.write_text('source = "arith"\ntrain_max_step = 5\n', encoding="utf-8")
    with pytest.raises(ValueError, match=rf"{re.escape(str(path))}: unknown key\(s\) 'train_max_step'"):
        load_recipe(path)


def test_invalid_toml_and_unknown_recipe_are_named(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text('source = "arith\n', encoding="utf-8")
    with pytest.raises(ValueError, match=rf"{re.escape(str(path))}: invalid TOML"):
        load_recipe(path)
    with pytest.raises(ValueError, match="built-ins: arith, arith-thinking, gsm8k"):
        load_recipe("nope")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"source": "math23k"}, "source='math23k'; allowed: arith, gsm8k"),
        ({"verifier": "code"}, "verifier='code'; allowed: math"),
        ({"prompt_template": "Q:"}, "prompt_template='Q:'; allowed: a string containing '{question}'"),
        ({"prompt_template": "{question} {other}"}, "does not format with only {question}"),
        ({"train_min_steps": 0}, "train_min_steps=0; allowed: an integer in 1..8"),
        ({"train_max_steps": 9}, "train_max_steps=9; allowed: an integer in 1..8"),
        ({"train_min_steps": 4, "train_max_steps": 2}, "train_min_steps=4 > train_max_steps=2"),
        ({"hard_steps": "4"}, "hard_steps='4'; allowed: an integer in 1..8"),
        ({"eval_steps": []}, "eval_steps=(); allowed: a non-empty list of distinct integers in 1..8"),
        ({"eval_steps": [1, 1]}, "eval_steps=(1, 1); allowed"),
        ({"seed": 1.5}, "seed=1.5; allowed: an integer"),
        ({"seed": True}, "seed=True; allowed: an integer"),
        ({"train_path": "x.jsonl"}, "source='arith' generates its tasks"),
        ({"name": ""}, "name=''; allowed: a non-empty string"),
    ],
)
def test_bad_values_name_the_key_and_what_is_allowed(tmp_path: Path, values: dict, message: str) -> None:
    data = {"name": "r", "source": "arith", **values}
    with pytest.raises(ValueError, match=re.escape(message)):
        recipe_from_dict(data, origin="r.toml")


def test_cli_preview_prints_the_tasks(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "400")  # rich wraps at the terminal width; keep each question on one line
    assert cli_main(["tasks", "preview", "arith", "--n", "2", "--steps", "3", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    expected = load_tasks(load_recipe("arith"), "test", 2, seed=1, steps=3)
    assert "split test: 2 task(s)" in out
    for task in expected:
        assert task.question in out and task.id in out and f"#### {task.answer}" in out
        assert f"answer {task.answer}   steps 3" in out


def test_cli_preview_reports_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert cli_main(["tasks", "preview", "gsm8k"]) == 2
    assert "error: recipe 'gsm8k' has no test_path" in capsys.readouterr().out
    recipe = _gsm8k_recipe(tmp_path)
    path = tmp_path / "recipes" / "mine.toml"
    assert cli_main(["tasks", "preview", str(path), "--split", "train", "--n", "1", "--steps", "2"]) == 0
    out = capsys.readouterr().out
    assert "Two?" in out and "One?" not in out and recipe.name in out
