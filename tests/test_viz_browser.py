"""The HTML viewer in a real headless Chromium (Debian's, driven by Selenium through chromedriver).

Skipped, saying why, when /usr/bin/chromium, /usr/bin/chromedriver or the selenium package is missing;
install with `apt-get install -y chromium chromium-driver` and `pip install -e ".[dev]"`. Selenium is
given the driver's path, so Selenium Manager never runs and nothing is downloaded. Screenshots go to
test-artifacts/ (git-ignored).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

import pytest
from vizdata import searched_tree, write_iteration, write_run

from selfimprove.search.tree import tree_stats
from selfimprove.viz import load_input, write_html, write_viewer

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"

if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
    pytest.skip(
        "needs Debian's chromium and chromium-driver (apt-get install -y chromium chromium-driver)",
        allow_module_level=True,
    )
webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (the dev extra)")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402


@pytest.fixture(scope="module")
def browser():
    profile = tempfile.mkdtemp(prefix="viz-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
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
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    run = write_run(tmp_path_factory.mktemp("viz_browser") / "run", {1: [1, 2, 3], 2: [4, 5]}, min_nodes=40)
    write_viewer(run)
    return run


def _open(driver, page: Path) -> list[dict]:
    """Load `page`, wait until the script has drawn, and return the console entries it logged."""
    driver.get_log("browser")  # drop what earlier pages logged
    driver.get(page.as_uri())
    deadline = time.monotonic() + 30
    while driver.execute_script("return document.body.dataset.ready") != "1":
        assert time.monotonic() < deadline, (
            f"the viewer never finished drawing; console: {driver.get_log('browser')}"
        )
        time.sleep(0.05)
    return driver.get_log("browser")


def _shown(driver) -> list[int]:
    return driver.execute_script(
        "return [...document.querySelectorAll('#viewport g.node')].map((g) => Number(g.dataset.id))"
    )


def _current_tree(run: Path, driver) -> dict:
    iteration = Select(driver.find_element(By.ID, "iteration")).first_selected_option.text.split()[0]
    task = Select(driver.find_element(By.ID, "problem-select")).first_selected_option.text.split()[1]
    return json.loads((run / iteration / "trees" / f"{task}.json").read_text())


def test_page_loads_offline_without_console_errors(browser, run_dir: Path):
    logs = _open(browser, run_dir / "viewer.html")
    assert [e for e in logs if e["level"] in ("SEVERE", "WARNING")] == []
    # self-contained: the page requested nothing beyond its own file
    assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0
    # and the log is really read: an error the page logs now is seen
    browser.execute_script("console.error('probe from the test')")
    assert any("probe from the test" in e["message"] for e in browser.get_log("browser"))


def test_expand_all_shows_every_node_of_every_tree(browser, run_dir: Path):
    _open(browser, run_dir / "viewer.html")
    iterations = Select(browser.find_element(By.ID, "iteration"))
    assert [o.text for o in iterations.options] == ["iter_001 (3 trees)", "iter_002 (2 trees)"]
    seen = 0
    for i in range(len(iterations.options)):
        iterations.select_by_index(i)
        problems = Select(browser.find_element(By.ID, "problem-select"))
        for j in range(len(problems.options)):
            problems.select_by_index(j)
            tree = _current_tree(run_dir, browser)
            browser.find_element(By.ID, "expand-all").click()
            assert sorted(_shown(browser)) == [n["id"] for n in tree["nodes"]]
            assert len(browser.find_elements(By.CSS_SELECTOR, "#viewport g.node")) == len(tree["nodes"])
            browser.find_element(By.ID, "collapse").click()
            assert sorted(_shown(browser)) == [0, *tree["nodes"][0]["children"]]
            seen += 1
    assert seen == 5


def test_clicking_a_node_shows_its_path_and_stats(browser, run_dir: Path):
    _open(browser, run_dir / "viewer.html")
    tree = _current_tree(run_dir, browser)
    nodes = {n["id"]: n for n in tree["nodes"]}
    shown = _shown(browser)
    # the deepest node drawn when the tree opens, and the path to it
    target = max(shown, key=lambda i: (nodes[i]["depth"], -i))
    path = [target]
    while nodes[path[-1]]["parent"] is not None:
        path.append(nodes[path[-1]]["parent"])
    path.reverse()
    assert len(path) >= 3
    browser.find_element(By.CSS_SELECTOR, f'#viewport g.node[data-id="{target}"]').click()
    steps = browser.find_elements(By.CSS_SELECTOR, "#path .step .txt")
    assert [s.text for s in steps] == [tree["prompt"].strip()] + [nodes[i]["text"] for i in path[1:]]
    assert browser.find_element(By.ID, "node-title").text.lower() == f"node #{target} · depth {len(path) - 1}"
    stats = browser.find_element(By.ID, "node-stats").text
    assert f"N (visits) {nodes[target]['N']}" in stats
    on_path = browser.execute_script(
        "return [...document.querySelectorAll('#viewport g.node.on-path')].map((g) => Number(g.dataset.id))"
    )
    assert sorted(on_path) == sorted(path)
    ARTIFACTS.mkdir(exist_ok=True)
    assert browser.save_screenshot(str(ARTIFACTS / "viewer.png"))
    assert (ARTIFACTS / "viewer.png").stat().st_size > 10_000


def test_pairs_highlight_their_sibling_edges(browser, run_dir: Path):
    _open(browser, run_dir / "viewer.html")
    tree = _current_tree(run_dir, browser)
    rows = [json.loads(line) for line in (run_dir / "iter_001" / "pairs.jsonl").read_text().splitlines()]
    step_pairs = [r for r in rows if r["tree_id"] == tree["task_id"] and r["kind"] in ("step", "extended")]
    assert step_pairs
    browser.find_element(By.ID, "expand-all").click()
    chosen = browser.execute_script("return document.querySelectorAll('#viewport .edge.chosen').length")
    rejected = browser.execute_script("return document.querySelectorAll('#viewport .edge.rejected').length")
    assert chosen == len({r["chosen_id"] for r in step_pairs})
    assert rejected == len({r["rejected_id"] for r in step_pairs})
    # a pair row selects the node whose children it contrasts
    browser.find_element(By.ID, "collapse").click()
    deepest = max(step_pairs, key=lambda r: r["depth"])
    index = [r for r in rows if r["tree_id"] == tree["task_id"]].index(deepest)
    browser.find_element(By.CSS_SELECTOR, f'#pairs .pair[data-pair="{index}"] .pair-head').click()
    assert browser.find_element(By.ID, "node-title").text.lower().startswith(f"node #{deepest['node_id']}")
    assert {deepest["chosen_id"], deepest["rejected_id"]} <= set(_shown(browser))


def test_toggle_badge_opens_and_closes_a_node(browser, run_dir: Path):
    _open(browser, run_dir / "viewer.html")
    tree = _current_tree(run_dir, browser)
    browser.find_element(By.ID, "collapse").click()
    nodes = {n["id"]: n for n in tree["nodes"]}
    first = next(c for c in nodes[0]["children"] if nodes[c]["children"])
    kids = nodes[first]["children"]
    badge = browser.find_element(By.CSS_SELECTOR, f'#viewport .badge[data-toggle="{first}"]')
    assert badge.text.startswith("+")
    badge.click()
    assert set(kids) <= set(_shown(browser))
    browser.find_element(By.CSS_SELECTOR, f'#viewport .badge[data-toggle="{first}"]').click()
    assert not set(kids) & set(_shown(browser))


def test_model_text_is_shown_as_text(browser, tmp_path: Path):
    tree = searched_tree(9, min_nodes=8)
    hostile = "</script><img src=x onerror=\"console.error('injected')\"> <b>bold?</b> \x12"
    tree.nodes[1].text = hostile
    file = tmp_path / "trees" / "hostile.json"
    file.parent.mkdir()
    file.write_text(json.dumps(tree.to_dict("mcts", tree_stats(tree))))
    page = write_html(load_input(file), tmp_path / "hostile.html")
    logs = _open(browser, page)
    assert [e for e in logs if e["level"] in ("SEVERE", "WARNING")] == []
    browser.find_element(By.CSS_SELECTOR, '#viewport g.node[data-id="1"]').click()
    assert browser.find_elements(By.CSS_SELECTOR, "#path img, #path b") == []
    text = browser.execute_script("return document.querySelector('#path .step.current .txt').textContent")
    assert text == hostile


def test_a_5000_node_tree_opens_collapsed_and_expands_in_seconds(browser, tmp_path: Path):
    write_iteration(tmp_path / "iter_001", [7], min_nodes=5000, children=4, max_depth=8)
    tree = json.loads(next((tmp_path / "iter_001" / "trees").glob("*.json")).read_text())
    page = write_html(load_input(tmp_path / "iter_001"), tmp_path / "big.html")
    start = time.perf_counter()
    logs = _open(browser, page)
    opened = time.perf_counter() - start
    assert [e for e in logs if e["level"] in ("SEVERE", "WARNING")] == []
    initially = len(_shown(browser))
    # collapsed below a depth: only what is expanded is drawn
    assert 1 < initially <= 400 < len(tree["nodes"])
    # time the click, the drawing and a forced layout of all of it
    elapsed_ms = browser.execute_script(
        "const t = performance.now(); document.getElementById('expand-all').click();"
        "document.getElementById('viewport').getBBox(); return performance.now() - t;"
    )
    assert len(_shown(browser)) == len(tree["nodes"]) >= 5000
    print(f"5,000 nodes: ready in {opened:.2f} s with {initially} drawn; expand all {elapsed_ms:.0f} ms")
    # generous for a shared CPU; an idle core takes well under a second
    assert elapsed_ms < 10_000
    # selecting a deep node after expanding stays interactive too
    deep = max(tree["nodes"], key=lambda n: n["depth"])
    browser.execute_script(
        "document.querySelector(`#viewport g.node[data-id='${arguments[0]}']`)"
        ".dispatchEvent(new MouseEvent('click', {bubbles: true}))",
        deep["id"],
    )
    assert browser.find_element(By.ID, "node-title").text.lower().startswith(f"node #{deep['id']}")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#path .step")) == deep["depth"] + 1
    ARTIFACTS.mkdir(exist_ok=True)
    assert browser.save_screenshot(str(ARTIFACTS / "viewer-5000.png"))
