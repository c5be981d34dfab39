"""Tasks: the Task record, the built-in arithmetic word-problem generator, the GSM8K loader and recipes."""

from selfimprove.tasks.arith import check_solution, generate_tasks
from selfimprove.tasks.gsm8k import load_gsm8k
from selfimprove.tasks.recipe import TaskRecipe, format_prompt, load_recipe, load_tasks, recipe_to_dict
from selfimprove.tasks.task import Task

__all__ = [
    "Task",
    "TaskRecipe",
    "check_solution",
    "format_prompt",
    "generate_tasks",
    "load_gsm8k",
    "load_recipe",
    "load_tasks",
    "recipe_to_dict",
]
