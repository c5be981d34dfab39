"""The `selfimprove` command line: one sub-command per stage, each defined beside the code it drives.

Each command module exposes `add_arguments(parser)` and `main(args) -> int`; modules are imported
only when their command runs, so `selfimprove tasks preview` does not pay for importing torch.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS: dict[str, tuple[str, str]] = {
    "run": (
        "selfimprove.loop.cli",
        "run the iterative self-improvement loop (the embedded default with no args)",
    ),
    "compare": ("selfimprove.loop.compare_cli", "table and plot several runs side by side"),
    "search": ("selfimprove.search.cli", "run a search and write trees and pairs.jsonl"),
    "solve": (
        "selfimprove.search.solve_cli",
        "answer one question by recursive thinking (PRefLexOR): thinking, reflections, vote",
    ),
    "train": ("selfimprove.train.cli", "preference-train a model on pairs.jsonl"),
    "eval": ("selfimprove.eval.cli", "greedy accuracy, maj@k and pass@k of a model on a task recipe"),
    "model": ("selfimprove.policy.cli", "build the embedded tiny model"),
    "tasks": ("selfimprove.tasks.cli", "inspect task recipes"),
    "viz": ("selfimprove.viz.cli", "search trees as an offline HTML viewer, Graphviz DOT or terminal text"),
    "serve": ("selfimprove.serve.cli", "serve a model over an OpenAI-compatible /v1/completions API"),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="selfimprove", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        if argv and argv[0] not in ("-h", "--help"):
            parser.error(f"unknown command {argv[0]!r}; choose from {', '.join(COMMANDS)}")
        parser.print_help()
        return 0 if argv else 2
    module = importlib.import_module(COMMANDS[argv[0]][0])
    command_parser = argparse.ArgumentParser(prog=f"selfimprove {argv[0]}", description=COMMANDS[argv[0]][1])
    module.add_arguments(command_parser)
    return int(module.main(command_parser.parse_args(argv[1:])) or 0)


if __name__ == "__main__":
    sys.exit(main())
