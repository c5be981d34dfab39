"""The knowledge graph: extraction, a hand-made corpus pinned node by node, persistence, growth and
statistics, retrieval, verified practice questions, the curriculum, LLM extraction and the HTML view."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from kgdata import CORPUS, T1, T2, T3, T4

from selfimprove.knowledge import (
    KnowledgeGraph,
    extract,
    failure_rate,
    llm_extraction_prompt,
    parse_llm_extraction,
)
from selfimprove.knowledge.graph import FORMAT
from selfimprove.knowledge.practice import realisable
from selfimprove.tasks.arith import evaluate_expression, generate_tasks
from selfimprove.tasks.splits import hash_split
from selfimprove.tasks.task import Task
from selfimprove.verify.annotations import annotation_errors
from selfimprove.verify.math import MathVerifier, is_equivalent

NODES = {
    "apple": "object", "bag": "object", "box": "object", "clip": "object", "pear": "object",
    "count": "role", "factor": "role", "loss": "role", "money": "role", "number": "role", "rate": "role",
    "size": "role", "time": "role", "total": "role",
    "add": "operation", "divide": "operation", "multiply": "operation", "subtract": "operation",
}  # fmt: skip
EDGES = {
    ("apple", "count", "quantity_of"): ("quantity_of", ["t1"]),
    ("bag", "count", "quantity_of"): ("quantity_of", ["t3"]),
    ("bag", "size", "quantity_of"): ("quantity_of", ["t3"]),
    ("box", "count", "quantity_of"): ("quantity_of", ["t3"]),
    ("clip", "count", "quantity_of"): ("quantity_of", ["t4"]),
    ("pear", "size", "quantity_of"): ("quantity_of", ["t3"]),
    ("pear", "total", "quantity_of"): ("quantity_of", ["t3"]),
    ("box", "pear", "multiply"): ("converts_to", ["t3"]),
    ("pear", "bag", "divide"): ("converts_to", ["t3"]),
    ("count", "subtract", "count = count - loss"): ("computed_by", ["t1"]),
    ("loss", "subtract", "count = count - loss"): ("operand_of", ["t1"]),
    ("total", "multiply", "total = time * rate"): ("computed_by", ["t2"]),
    ("time", "multiply", "total = time * rate"): ("operand_of", ["t2"]),
    ("rate", "multiply", "total = time * rate"): ("operand_of", ["t2"]),
    ("money", "subtract", "money = total - loss"): ("computed_by", ["t2"]),
    ("total", "subtract", "money = total - loss"): ("operand_of", ["t2"]),
    ("loss", "subtract", "money = total - loss"): ("operand_of", ["t2"]),
    ("total", "multiply", "total = count * size"): ("computed_by", ["t3"]),
    ("count", "multiply", "total = count * size"): ("operand_of", ["t3"]),
    ("size", "multiply", "total = count * size"): ("operand_of", ["t3"]),
    ("count", "divide", "count = total / size"): ("computed_by", ["t3"]),
    ("total", "divide", "count = total / size"): ("operand_of", ["t3"]),
    ("size", "divide", "count = total / size"): ("operand_of", ["t3"]),
    ("count", "divide", "count = number / factor"): ("computed_by", ["t4"]),
    ("number", "divide", "count = number / factor"): ("operand_of", ["t4"]),
    ("factor", "divide", "count = number / factor"): ("operand_of", ["t4"]),
    ("count", "add", "count = number + count"): ("computed_by", ["t4"]),
    ("number", "add", "count = number + count"): ("operand_of", ["t4"]),
}
GSM8K_DIR = Path(
    os.environ.get("SELFIMPROVE_GSM8K_DIR", Path(__file__).resolve().parents[2] / "shared/data/gsm8k")
)


@pytest.fixture(scope="module")
def arith_tasks() -> list[Task]:
    return generate_tasks("train", 400, seed=11)


@pytest.fixture(scope="module")
def arith_graph(arith_tasks: list[Task]) -> KnowledgeGraph:
    return KnowledgeGraph.build(arith_tasks)


# ---------------------------------------------------------------------------------------------------------
# extraction


def test_extraction_reads_roles_objects_and_relations() -> None:
    ext = extract(T2.question, T2.solution)
    assert [(q.text, q.role, q.obj) for q in ext.quantities] == [
        ("3", "time", None),
        ("$8", "rate", None),
        ("$4", "loss", None),
    ]
    assert [s.formula for s in ext.steps] == ["total = time * rate", "money = total - loss"]
    assert [s.from_previous for s in ext.steps] == [(False, False), (True, False)]
    assert ext.concepts == ("time", "rate", "loss") and ext.structure == ("time+rate", "loss")
    assert ext.known == "time 3, rate 8, loss 4" and ext.plan == "3*8, 24-4"
    # "keeps 50%" is written /2 in the solution: the percent matches its divisor
    question = "Ann has $60. She keeps 50% of the money and donates the rest. How much money does she have?"
    ext = extract(question, "She keeps 50%, so 60/2=<<60/2=30>>30 dollars.\n#### 30")
    assert [s.formula for s in ext.steps] == [
        "money = money / percent"
    ] and ext.known == "money 60, percent 50%"


def test_every_arith_problem_is_read_completely(arith_tasks: list[Task]) -> None:
    """Each k-step problem states k+1 quantities, all with a role; each step is one realisable relation."""
    for task in arith_tasks:
        ext = extract(task.question, task.solution)
        assert len(ext.steps) == task.steps and len(ext.quantities) == task.steps + 1, task.question
        assert "number" not in ext.roles, task.question
        assert all(
            realisable({"result": s.result_role, "op": s.op, "inputs": list(s.inputs)}) for s in ext.steps
        )


@pytest.mark.parametrize(
    "text",
    [
        "",
        "$$$ %%% <<1+>> ####",
        "9**9**9**9 " * 50,
        "1" * 10_000 + " apples.",
        "<<" * 1000,
        "Half. Twice. A dozen.",
    ],
    ids=["empty", "symbols", "power-tower", "10k-digits", "brackets", "words"],
)
def test_extraction_never_raises_on_odd_text(text: str) -> None:
    ext = extract(text, text)
    assert isinstance(ext.concepts, tuple) and isinstance(ext.plan, str)
    KnowledgeGraph.build([Task("odd", text, "1", text)])


def test_gsm8k_text_is_read_gracefully() -> None:
    path = GSM8K_DIR / "train.jsonl"
    if not path.is_file():
        pytest.skip(f"GSM8K data not found at {path} (set SELFIMPROVE_GSM8K_DIR)")
    from selfimprove.tasks.gsm8k import load_gsm8k

    tasks = load_gsm8k(path)[:300]
    graph = KnowledgeGraph.build(tasks)
    assert graph.summary()["solved"] == sum(bool(extract(t.question, t.solution).steps) for t in tasks)
    assert graph.summary()["edges/computed_by"] > 50  # plenty of relations, none an error


# ---------------------------------------------------------------------------------------------------------
# the graph


def test_hand_made_corpus_has_exactly_the_expected_nodes_and_edges() -> None:
    graph = KnowledgeGraph.build(CORPUS)
    assert {n: d["type"] for n, d in graph.graph.nodes(data=True)} == NODES
    edges = {(u, v, k): (d["type"], d["tasks"]) for u, v, k, d in graph.graph.edges(keys=True, data=True)}
    assert edges == EDGES
    for _, _, data in graph.graph.edges(data=True):
        assert data["support"] == len(data["tasks"]) and data["uses"] == data["correct"] == 0
    assert graph.graph.nodes["count"]["support"] == 3 and graph.graph.nodes["apple"]["support"] == 1
    assert graph.graph.edges["total", "multiply", "total = time * rate"]["inputs"] == ["time", "rate"]
    assert graph.summary() == {
        "nodes": 18, "edges": 28, "nodes/object": 5, "nodes/role": 9, "nodes/operation": 4,
        "edges/quantity_of": 7, "edges/computed_by": 7, "edges/operand_of": 12, "edges/converts_to": 2,
        "solved": 4,
    }  # fmt: skip
    assert graph.solved["t3"] == {
        "question": T3.question,
        "concepts": ["box", "count", "pear", "size", "bag"],
        "structure": ["count+size", "size"],
        "plan": "4*6, 24/3",
    }


def test_build_is_deterministic_and_independent_of_order(tmp_path: Path) -> None:
    first, again, reordered = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "c.json"
    KnowledgeGraph.build(CORPUS).save(first)
    KnowledgeGraph.build(CORPUS).save(again)
    KnowledgeGraph.build(CORPUS[::-1]).save(reordered)
    assert first.read_bytes() == again.read_bytes() == reordered.read_bytes()


def test_solutions_mapping_overrides_the_gold_solution() -> None:
    other = "He gives away 5, so 12-5=<<12-5=7>>7 apples.\nThen 7*1=<<7*1=7>>7 apples.\n#### 7"
    graph = KnowledgeGraph.build([T1], solutions={"t1": other})
    assert graph.solved["t1"]["plan"] == "12-5, 7*1"


def test_save_load_round_trip(tmp_path: Path) -> None:
    graph = KnowledgeGraph.build(CORPUS)
    graph.add_solution(T2, T2.solution or "", correct=True)
    path = tmp_path / "run" / "knowledge.json"
    graph.save(path)
    loaded = KnowledgeGraph.load(path)
    assert loaded.to_node_link() == graph.to_node_link()
    assert dict(loaded.graph.nodes(data=True)) == dict(graph.graph.nodes(data=True))
    assert sorted(loaded.graph.edges(keys=True, data=True)) == sorted(graph.graph.edges(keys=True, data=True))
    loaded.save(tmp_path / "again.json")
    assert (tmp_path / "again.json").read_bytes() == path.read_bytes()
    data = json.loads(path.read_text())
    assert {"nodes", "edges", "graph", "directed", "multigraph"} <= data.keys() and data["multigraph"]
    # plain networkx reads the file to the same graph
    import networkx as nx

    theirs = nx.node_link_graph(data, edges="edges")
    assert sorted(theirs.edges(keys=True, data=True)) == sorted(graph.graph.edges(keys=True, data=True))
    assert not list(path.parent.glob(".*.tmp"))  # the atomic write left no temp file


G = {"format": FORMAT}


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("{not json", "cannot read"),
        ("[1, 2]", "not node-link"),
        ('{"nodes": [], "edges": [], "graph": {}}', "format"),
        (json.dumps({"nodes": [{"id": "a", "type": "planet"}], "edges": [], "graph": G}), "node 0 has type"),
        (
            json.dumps(
                {
                    "nodes": [],
                    "edges": [
                        {
                            "source": "a",
                            "target": "b",
                            "key": "k",
                            "type": "quantity_of",
                            "tasks": [],
                            "uses": 0,
                            "correct": 0,
                        }
                    ],
                    "graph": G,
                }
            ),
            "edge 0 joins a node",
        ),
        (json.dumps({"nodes": [{"type": "role"}], "edges": [], "graph": G}), "malformed"),
    ],
)
def test_load_rejects_other_files_naming_them(tmp_path: Path, content: str, match: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=match) as err:
        KnowledgeGraph.load(path)
    assert "bad.json" in str(err.value)


def test_add_solution_grows_and_counts_uses() -> None:
    graph = KnowledgeGraph.build([T1])
    formula = ("money", "subtract", "money = total - loss")
    assert not graph.graph.has_edge(*formula)
    graph.add_solution(T2, T2.solution or "", correct=True)
    edge = graph.graph.edges[formula]
    assert (edge["tasks"], edge["uses"], edge["correct"]) == (["t2"], 1, 1)
    assert graph.solved["t2"]["plan"] == "3*8, 24-4"
    # a second task showing the same relation adds provenance; repeating a task does not duplicate it
    twin = Task("t2b", T2.question.replace("Mia", "Ana"), "20", T2.solution)
    graph.add_solution(twin, T2.solution or "", correct=True)
    graph.add_solution(twin, T2.solution or "", correct=True)
    edge = graph.graph.edges[formula]
    assert (edge["tasks"], edge["support"], edge["uses"], edge["correct"]) == (["t2", "t2b"], 2, 3, 3)
    assert graph.graph.nodes["money"]["support"] == 2


def test_a_wrong_solution_is_charged_to_its_first_wrong_step() -> None:
    graph = KnowledgeGraph.build(CORPUS)
    wrong_second = "3*8=<<3*8=24>>24 dollars.\n24-4=<<24-4=21>>21 dollars.\n#### 21"
    graph.add_solution(T2, wrong_second, correct=False)
    first = graph.graph.edges["total", "multiply", "total = time * rate"]
    second = graph.graph.edges["money", "subtract", "money = total - loss"]
    assert (first["uses"], first["correct"], second["uses"], second["correct"]) == (1, 1, 1, 0)
    wrong_first = "3+8=<<3+8=11>>11 dollars.\n11-4=<<11-4=7>>7 dollars.\n#### 7"
    graph.add_solution(T2, wrong_first, correct=False)
    assert (first["uses"], first["correct"], second["uses"]) == (2, 1, 1)  # step 2 was never reached
    assert graph.graph.edges["time", "multiply", "total = time * rate"]["uses"] == 2  # every edge of the step
    # the question's quantity edges count the whole solution
    graph.add_solution(T1, T1.solution or "", correct=True)
    graph.add_solution(T1, "#### 8", correct=False)
    apple = graph.graph.edges["apple", "count", "quantity_of"]
    assert (apple["uses"], apple["correct"]) == (2, 1)
    assert graph.graph.edges["count", "subtract", "count = count - loss"]["uses"] == 2


# ---------------------------------------------------------------------------------------------------------
# retrieval


def test_retrieval_returns_a_known_problems_concepts() -> None:
    graph = KnowledgeGraph.build(CORPUS)
    got = graph.retrieve(T3.question)
    assert got.concepts == ("box", "count", "pear", "size", "bag")
    # formulas the stated roles (count, size) can feed; "count = count - loss" needs a loss, so it is not one
    assert got.relations == ("total = count * size", "count = total / size")
    assert "t3" not in got.examples  # the same question text is never its own example
    assert got.examples == ("t1",) and got.example_plans == ("12-5",)
    assert got.thinking_prefix() == "Concepts: box, count, pear, size, bag\nExample: 12-5\n"
    assert graph.retrieve(T2.question, examples=0).thinking_prefix() == "Concepts: time, rate, loss\n"
    assert graph.retrieve("What is love?").thinking_prefix() == "Concepts: none\n"
    with pytest.raises(ValueError, match="examples"):
        graph.retrieve(T1.question, examples=-1)


def test_retrieval_follows_the_growing_graph(tmp_path: Path) -> None:
    graph = KnowledgeGraph.build([T1, T3])
    query = (
        "Ann works 2 hours and earns $5 an hour. She spends $3 on a pen. How much money does Ann have now?"
    )
    before = graph.retrieve(query)  # builds the index
    assert before.examples == ("t1",) and "total = time * rate" not in before.relations
    graph.add_solution(T2, T2.solution or "", correct=True)
    after = graph.retrieve(query)
    assert after.examples == ("t2",) and after.example_plans == ("3*8, 24-4",)
    assert after.relations[0] == "total = time * rate"
    graph.save(tmp_path / "g.json")
    assert KnowledgeGraph.load(tmp_path / "g.json").retrieve(query) == after  # same as a fresh index


def test_retrieval_prefers_the_same_structure_then_jaccard_then_id(arith_graph: KnowledgeGraph) -> None:
    target = ["money", "gain"]  # has $M, then gains $G
    same = sorted(t for t, entry in arith_graph.solved.items() if entry["structure"] == target)
    assert len(same) >= 4
    query = "Rosa has $50. She wins $7. How much money does Rosa have now?"
    got = arith_graph.retrieve(query, examples=3)
    assert list(got.examples) == same[:3]  # equal concept sets (money, gain): ties broken by id
    assert all(re.fullmatch(r"\d+\+\d+", plan) for plan in got.example_plans)
    excluded = arith_graph.retrieve(query, examples=3, exclude=same[:1])
    assert list(excluded.examples) == same[1:4]
    # its own text is never an example, even unexcluded
    own = arith_graph.solved[same[0]]["question"]
    assert same[0] not in arith_graph.retrieve(own, examples=3).examples


def test_retrieval_examples_share_the_operations_of_the_problem(arith_tasks, arith_graph) -> None:
    """In arith, a structure fixes the operations: whenever another solved problem has the task's structure,
    the Example plan has exactly the task's operations in order (the numbers differ)."""
    structures = [tuple(arith_graph.solved[t.id]["structure"]) for t in arith_tasks]
    shared = 0
    for task, structure in zip(arith_tasks, structures, strict=True):
        plans = arith_graph.retrieve(task.question, exclude=(task.id,)).example_plans
        assert len(plans) == 1  # the fallback always finds an overlapping problem
        if structures.count(structure) > 1:
            shared += 1
            assert re.sub(r"\d+", "", plans[0]) == re.sub(r"\d+", "", arith_graph.solved[task.id]["plan"])
    assert shared == 213  # of 400 problems (53%); of 2,000 among 20,000 solved, 96% share a structure


# ---------------------------------------------------------------------------------------------------------
# practice questions


def _replay(solution: str) -> int:
    """The answer recomputed from the solution's own annotations, independently of the generator."""
    value = None
    for expr in re.findall(r"<<([^=<>]*)=", solution):
        value = evaluate_expression(expr)
    assert value is not None and value.denominator == 1
    return int(value)


def test_practice_questions_have_verified_answers(arith_graph: KnowledgeGraph) -> None:
    tasks = arith_graph.practice_questions(40, seed=3)
    assert len(tasks) == 40 and len({t.id for t in tasks}) == 40 and len({t.question for t in tasks}) == 40
    known = {entry["question"] for entry in arith_graph.solved.values()}
    verifier = MathVerifier()
    for task in tasks:
        assert task.metadata["verified"] is True
        assert annotation_errors(task.solution or "") == []
        assert is_equivalent(task.answer, str(_replay(task.solution or "")))
        assert verifier.check(task, task.solution or "").correct
        assert hash_split(task.question) == "train" and task.question not in known
        ext = extract(task.question, task.solution)
        assert [s.formula for s in ext.steps] == task.metadata["formulas"]  # the path it was composed from
        assert all(f in arith_graph.formulas() for f in task.metadata["formulas"])
        assert 1 <= task.steps <= 4
    assert {t.steps for t in tasks} >= {1, 2, 3, 4}


def test_practice_is_deterministic_and_seeded(arith_graph: KnowledgeGraph) -> None:
    a = arith_graph.practice_questions(10, seed=5)
    assert a == arith_graph.practice_questions(10, seed=5)
    assert a != arith_graph.practice_questions(10, seed=6)
    long = arith_graph.practice_questions(10, seed=5, min_steps=3, max_steps=3)
    assert {t.steps for t in long} == {3}
    with pytest.raises(ValueError, match="min_steps"):
        arith_graph.practice_questions(1, seed=0, min_steps=3, max_steps=2)


def test_practice_favours_failed_relations() -> None:
    graph = KnowledgeGraph.build(generate_tasks("train", 200, seed=1, min_steps=1, max_steps=1))
    for i in range(30):  # the policy keeps failing "count = count - loss"
        task = Task(f"f{i}", T1.question, "7", T1.solution)
        graph.add_solution(task, "#### 3", correct=False)
    baseline = KnowledgeGraph.build(generate_tasks("train", 200, seed=1, min_steps=1, max_steps=1))
    share = [
        sum(
            t.metadata["formulas"][0] == "count = count - loss"
            for t in g.practice_questions(200, seed=0, max_steps=1)
        )
        for g in (baseline, graph)
    ]
    # its weight goes from the prior 1/2 to (30 + 1) / (30 + 2): 1.94 times as likely a start among ~20
    assert share == [17, 28]


def test_unwritable_relations_become_unverified_chunks() -> None:
    graph = KnowledgeGraph.build([T4])  # "count = number / factor" has no arith template
    tasks = graph.practice_questions(3, seed=0)
    for task in tasks:
        assert task.metadata["verified"] is False and task.answer == "" and task.solution is None
        assert task.metadata["source_task"] == "t4" and task.question != T4.question
        assert re.sub(r"\d+", "N", task.question) == re.sub(r"\d+", "N", T4.question)
    with pytest.raises(ValueError, match="no formula"):
        KnowledgeGraph.build([Task("x", "What is love?", "1", "#### 1")]).practice_questions(1, seed=0)


# ---------------------------------------------------------------------------------------------------------
# curriculum


def test_curriculum_weights_follow_failure_rates() -> None:
    graph = KnowledgeGraph.build(CORPUS)
    assert graph.curriculum_weights([T1, T2, Task("q", "What is love?", "1")]) == [0.5, 0.5, 0.5]
    for _ in range(3):
        graph.add_solution(T1, "#### 3", correct=False)  # count = count - loss: 3 uses, 0 right
    graph.add_solution(T2, T2.solution or "", correct=True)  # both relations: 1 use, 1 right
    weights = graph.curriculum_weights([T1, T2, T3])
    assert weights == [pytest.approx(4 / 5), pytest.approx(1 / 3), pytest.approx(0.5)]
    assert failure_rate(0, 0) == 0.5 and failure_rate(8, 8) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="correct"):
        failure_rate(1, 2)


# ---------------------------------------------------------------------------------------------------------
# LLM extraction


def _reply(quantities: list[tuple], steps: list[tuple]) -> str:
    """A model reply in the asked JSON shape, from (value, role, object) and (expression, result, inputs,
    result_role) tuples."""
    return json.dumps(
        {
            "quantities": [{"value": v, "role": r, "object": o} for v, r, o in quantities],
            "steps": [
                {"expression": e, "result": res, "inputs": i, "result_role": rr, "object": None}
                for e, res, i, rr in steps
            ],
        }
    )


MIA = [("3", "time", None), ("$8", "rate", None), ("4", "loss", None)]


def test_llm_extraction_is_parsed_and_validated() -> None:
    prompt = llm_extraction_prompt(T2.question, T2.solution or "")
    assert T2.question in prompt and prompt.endswith("JSON:")
    steps = [("3*8", "24", ["time", "rate"], "total"), ("24-4", "20", ["total", "loss"], "money")]
    ext, errors = parse_llm_extraction(f"Sure! {_reply(MIA, steps)} Hope this helps.", T2.question)
    assert errors == () and ext is not None
    assert [s.formula for s in ext.steps] == ["total = time * rate", "money = total - loss"]
    graph = KnowledgeGraph.build([T1])
    graph.add_extraction("t2", T2.question, ext)
    assert graph.graph.edges["money", "subtract", "money = total - loss"]["tasks"] == ["t2"]


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        ("no json here", "no JSON object"),
        ('{"quantities": 3, "steps": []}', "must both be lists"),
        (_reply([("99", "time", None)], []), "not a number stated"),
        (_reply([("3", "wizard", None)], []), "role 'wizard'"),
        (_reply([("3", "time", "</script>")], []), "object"),
        (_reply(MIA, [("3*8", "25", ["time", "rate"], "total")]), "3\\*8 is 24, not '25'"),
        (_reply([], [("__import__('os')", "1", [], "total")]), "not flat arithmetic"),
        (_reply(MIA, [("3*77", "231", ["time", "rate"], "total")]), "neither stated nor computed"),
        (_reply(MIA, [("3*8", "24", ["time"], "total")]), "one role"),
    ],
    ids=["text", "shape", "unstated", "role", "object", "false", "code", "operand", "inputs"],
)
def test_llm_extraction_rejects_invalid_replies(reply: str, error: str) -> None:
    ext, errors = parse_llm_extraction(reply, T2.question)
    assert ext is None and any(re.search(error, e) for e in errors), errors


# ---------------------------------------------------------------------------------------------------------
# the offline HTML view


def test_knowledge_html_is_self_contained(tmp_path: Path) -> None:
    from selfimprove.viz.knowledge_html import knowledge_payload, write_knowledge_html

    hostile = Task("h1", "Zed has 5 </script><b>s. He gives away 2 of them.", "3", "5-2=<<5-2=3>>3\n#### 3")
    graph = KnowledgeGraph.build([*CORPUS, hostile])
    path = write_knowledge_html(graph, tmp_path / "kg.html", title="run <1>")
    page = path.read_text()
    assert "<title>run &lt;1&gt;</title>" in page
    assert page.count("</script>") == 2  # the data block and the code: no text closed a block early
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page) and "@import" not in page
    block = re.search(r'<script type="application/json" id="kg-data">(.*?)</script>', page, re.S)
    assert block is not None
    data = json.loads(block.group(1))
    assert data == json.loads(json.dumps(knowledge_payload(graph)))
    assert {n["id"] for n in data["nodes"]} == set(graph.graph.nodes)
    assert len(data["edges"]) == graph.graph.number_of_edges()
    assert data["questions"]["h1"] == hostile.question
    assert render_again(graph) == page  # deterministic, layout included
    small = knowledge_payload(graph, max_nodes=10)
    assert small["shown_nodes"] == 10 and {n["type"] for n in small["nodes"]} == {"role", "operation"}


def render_again(graph: KnowledgeGraph) -> str:
    from selfimprove.viz.knowledge_html import render_knowledge_html

    return render_knowledge_html(graph, title="run <1>")


def test_knowledge_html_in_a_browser(tmp_path: Path) -> None:
    if not Path("/usr/bin/chromium").exists() or not Path("/usr/bin/chromedriver").exists():
        pytest.skip("needs Debian's chromium and chromium-driver")
    webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (the dev extra)")
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    from selfimprove.viz.knowledge_html import write_knowledge_html

    graph = KnowledgeGraph.build(CORPUS)
    graph.add_solution(T2, T2.solution or "", correct=True)
    path = write_knowledge_html(graph, tmp_path / "kg.html")
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--window-size=1200,800",
                 f"--user-data-dir={tmp_path / 'profile'}"):  # fmt: skip
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        driver.get(path.as_uri())
        # 28 edges on 25 lines: (loss, subtract), (total, multiply) and (count, divide) hold two formulas each
        assert driver.execute_script("return window.__kg") == {"nodes": 18, "links": 25, "edges": 28}
        assert len(driver.find_elements(By.CSS_SELECTOR, "g.node")) == 18
        assert [e for e in driver.get_log("browser") if e["level"] == "SEVERE"] == []
        driver.execute_script(
            "document.querySelector('g.node[data-id=\"multiply\"]')"
            ".dispatchEvent(new MouseEvent('click', {bubbles: true}))"
        )
        panel = driver.find_element(By.ID, "panel").text
        assert "total = time * rate" in panel and "used 1 · right 1" in panel
        driver.find_element(By.CSS_SELECTOR, 'input[data-type="operand_of"]').click()
        assert not driver.find_elements(By.CSS_SELECTOR, "path.link.operand_of")
    finally:
        driver.quit()
