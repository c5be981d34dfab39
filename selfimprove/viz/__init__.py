"""Search visualisation: trees and their preference pairs as offline HTML, Graphviz DOT or terminal text."""

from selfimprove.viz.dot import render_dot
from selfimprove.viz.html import render_html, write_html, write_viewer
from selfimprove.viz.load import VizInput, VizIteration, VizTree, load_input
from selfimprove.viz.text import render_text

__all__ = [
    "VizInput",
    "VizIteration",
    "VizTree",
    "load_input",
    "render_dot",
    "render_html",
    "render_text",
    "write_html",
    "write_viewer",
]
