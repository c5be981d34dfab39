"""`selfimprove viz PATH`: search trees as an offline HTML viewer, Graphviz DOT, or a terminal tree.

PATH is a tree JSON, an iteration folder (trees/ + pairs.jsonl) or a run folder (iter_*/). HTML goes to
PATH/viewer.html for a folder and next to the file for a tree JSON, unless -o says otherwise; DOT and
text go to standard output unless -o names a file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

FORMATS = ("html", "dot", "text")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", help="a tree JSON, an iteration folder or a run folder")
    parser.add_argument("-o", "--out", default=None, help="output file (default: see above)")
    parser.add_argument("--format", choices=FORMATS, default="html")
    parser.add_argument("--iteration", default=None, help="only this iteration (iter_002 or 2)")
    parser.add_argument("--task", default=None, help="only this task id's tree")


def default_html_path(path: str | Path) -> Path:
    path = Path(path)
    return path.with_suffix(".html") if path.is_file() else path / "viewer.html"


def main(args: argparse.Namespace) -> int:
    from rich.console import Console

    from selfimprove.io import atomic_write_text
    from selfimprove.viz.dot import render_dot
    from selfimprove.viz.html import write_html
    from selfimprove.viz.load import load_input
    from selfimprove.viz.text import render_text

    try:
        data = load_input(args.path).select(args.iteration, args.task)
    except (ValueError, FileNotFoundError) as err:
        print(f"selfimprove viz: error: {err}", file=sys.stderr)
        return 2
    trees = sum(len(it.trees) for it in data.iterations)
    nodes = sum(len(t.tree["nodes"]) for it in data.iterations for t in it.trees)
    if args.format == "html":
        out = write_html(data, args.out or default_html_path(args.path))
        print(f"wrote {out}: {len(data.iterations)} iteration(s), {trees} tree(s), {nodes:,} nodes")
    elif args.format == "dot":
        dot = render_dot(data)
        if args.out:
            atomic_write_text(args.out, dot)
            print(f"wrote {args.out}: {trees} tree(s), {nodes:,} nodes")
        else:
            sys.stdout.write(dot)
    elif args.out:
        # a file gets plain text, wide enough that step texts are not cut by the terminal's width
        with open(args.out, "w", encoding="utf-8") as f:
            console = Console(file=f, width=200, no_color=True, highlight=False)
            for tree in render_text(data):
                console.print(tree)
        print(f"wrote {args.out}: {trees} tree(s), {nodes:,} nodes")
    else:
        console = Console(highlight=False)
        for tree in render_text(data):
            console.print(tree)
    return 0
