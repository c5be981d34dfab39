"""Benchmark: the HTML viewer on a 5,000-node search tree, in headless Chromium.

The tree is grown by tests/vizdata.py (the engine's Tree, PUCT selection, backup and pair extraction,
with a seeded stand-in for the model). We time, in one run and one browser:
- writing the page (Python: load the iteration folder, render, write);
- opening it until the script has drawn (the default view: collapsed below depth 3, at most 400 nodes);
- "Expand all" until every node is drawn and laid out (the click, the SVG parse and a forced layout),
  as shipped (above 1,200 shown nodes only dots are drawn: no labels or toggles), and with labels kept
  at any size (the same page with that threshold set to infinity), to show what the compact mode buys.

Run: `python benchmarks/viz_viewer.py [--nodes 5000] [--repeats 3]` (needs chromium, chromium-driver and
the dev extra's selenium).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from vizdata import write_iteration

from selfimprove.viz import load_input, write_html

COMPACT = "const COMPACT_ABOVE = 1200;"
NODES_DRAWN = "return document.querySelectorAll('#viewport .node').length"


def _browser(profile: str) -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1500,950",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def _open(driver: webdriver.Chrome, page: Path) -> float:
    start = time.perf_counter()
    driver.get(page.as_uri())
    while driver.execute_script("return document.body.dataset.ready") != "1":
        time.sleep(0.01)
    return time.perf_counter() - start


def _expand_all_ms(driver: webdriver.Chrome) -> float:
    return driver.execute_script(
        "const t = performance.now(); document.getElementById('expand-all').click();"
        "document.getElementById('viewport').getBBox(); return performance.now() - t;"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="viz-bench-"))
    write_iteration(work / "iter_001", [7], min_nodes=args.nodes, children=4, max_depth=8)
    start = time.perf_counter()
    page = write_html(load_input(work / "iter_001"), work / "viewer.html")
    write_s = time.perf_counter() - start
    labelled = work / "viewer-labels.html"
    text = page.read_text()
    if COMPACT not in text:
        raise SystemExit(f"the viewer script no longer contains {COMPACT!r}; update this benchmark")
    labelled.write_text(text.replace(COMPACT, "const COMPACT_ABOVE = Infinity;"))

    driver = _browser(str(work / "profile"))
    try:
        rows = {"as shipped (dots above 1,200)": page, "labels at any size": labelled}
        results = {}
        for name, path in rows.items():
            opens, expands = [], []
            for _ in range(args.repeats):
                opens.append(_open(driver, path))
                initially = driver.execute_script(NODES_DRAWN)
                expands.append(_expand_all_ms(driver))
                drawn = driver.execute_script("return document.querySelectorAll('#viewport *').length")
            results[name] = (statistics.median(opens), initially, statistics.median(expands), drawn)
    finally:
        driver.quit()

    print(f"tree: {args.nodes:,}+ nodes; page {page.stat().st_size / 1e6:.2f} MB written in {write_s:.2f} s")
    print("| page | open (s) | nodes drawn at open | expand all (ms) | SVG elements after |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, (opened, initially, expand, drawn) in results.items():
        print(f"| {name} | {opened:.2f} | {initially} | {expand:.0f} | {drawn:,} |")
    shipped, labels = results.values()
    print(f"expand all, labels / as shipped: {labels[2] / shipped[2]:.2f}x")


if __name__ == "__main__":
    main()
