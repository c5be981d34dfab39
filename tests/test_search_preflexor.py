"""PRefLexOR recursive thinking: rounds, early stop, same-format pairs, step pairs, malformed output, the
union search, recipes, the viewer and the loop's graph hand-over. Logic is pinned on a scripted policy whose
every round is written out below; the real (trained tiny) model runs the search and one loop phase."""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from selfimprove.knowledge import KnowledgeGraph
from selfimprove.policy.base import Completion
from selfimprove.search.base import SearchResult
from selfimprove.search.best_of_n import BestOfN, BestOfNConfig
from selfimprove.search.output import write_search_result
from selfimprove.search.preflexor import PRefLexOR, PRefLexORConfig, carried_thinking, first_wrong_line
from selfimprove.search.recipe import load_search, search_from_mapping, search_to_mapping
from selfimprove.search.union import UnionSearch
from selfimprove.tasks.task import Task
from selfimprove.tasks.thinking import THINKING_OPEN, format_thinking, parse_thinking
from selfimprove.verify.registry import make_verifier

REPO = Path(__file__).resolve().parent.parent
PROMPT = "Question: {question}\nAnswer:\n"

EGGS = Task(
    id="eggs",
    question="A box holds 6 eggs. Sam buys 4 boxes and eats 5 eggs. How many eggs are left?",
    answer="19",
    solution="He buys 4*6=<<4*6=24>>24 eggs.\nHe eats 5, so 24-5=<<24-5=19>>19 eggs.\n#### 19",
    metadata={"steps": 2},
)
THINK = "Concepts: count, total\nKnown: 6 eggs a box, 4 boxes, 5 eaten\nPlan: 4*6, 24-5"
LINE_1 = "He buys 4*6=<<4*6=24>>24 eggs."


def _round(answer_lines: Sequence[str], *, thinking: str = THINK, reflection: str | None = None) -> str:
    return format_thinking(thinking, "\n".join(answer_lines), reflection=reflection)


# round 0 of the four chains, as the model writes it after "<|thinking|>\n"
SLIP = _round([LINE_1, "He eats 5, so 24-5=<<24-5=18>>18 eggs.", "#### 18"])  # an arithmetic slip
RIGHT = _round([LINE_1, "He eats 5, so 24-5=<<24-5=19>>19 eggs.", "#### 19"])
BROKEN = THINK + "\nHe buys 24 eggs and has 21 left.\n#### 21"  # never closes its thinking
LUCKY = _round(["He buys 4*6=<<4*6=25>>24 eggs.", "He eats 5, so 24-5=<<24-5=19>>19 eggs.", "#### 19"])
# the refinements, keyed by how the previous round ends
REFINE = {
    "#### 18": _round(RIGHT.split("<|/thinking|>\n")[1].splitlines(), reflection="24-5 is 19, not 18."),
    "#### 21": _round(["He buys 4+6=<<4+6=10>>10 eggs.", "#### 10"], thinking="Known: 4 boxes\nPlan: 4+6"),
    "#### 10": _round([LINE_1, "He eats 5, so 24-5=<<24-5=17>>17 eggs.", "#### 17"], reflection="Multiply."),
    # the reflection quotes the false step; it is not part of what is verified, so the round is correct
    "#### 19": _round(RIGHT.split("<|/thinking|>\n")[1].splitlines(), reflection="<<4*6=25>>25 was false."),
}


class ScriptedPolicy:
    """A deterministic Policy whose every completion is given by `respond(prompt, i)` (i-th of n samples).

    The rounds it writes are spelled out above, so the search's bookkeeping (rounds, verdicts, pairs) can be
    checked against hand-derived values; the real model is exercised in `test_real_model_*`.
    """

    def __init__(self, respond: Callable[[str, int], str]) -> None:
        self.respond = respond
        self.prompts: list[str] = []

    def generate(self, prompts: Sequence[str], *, n: int = 1, **_: object) -> list[list[Completion]]:
        self.prompts.extend(prompts)
        out = []
        for prompt in prompts:
            texts = [self.respond(prompt, i) for i in range(n)]
            out.append([Completion(t, tuple(range(len(t.split()))), -float(len(t)), "eos") for t in texts])
        return out

    def logprobs(self, prompts: Sequence[str], completions: Sequence[str]) -> list[float]:
        return [0.0] * len(prompts)


def _eggs_script(prompt: str, i: int) -> str:
    if prompt.endswith(THINKING_OPEN + "\n"):  # round 0: the four chains
        return [SLIP, RIGHT, BROKEN, LUCKY][i][len(THINKING_OPEN) + 1 :]
    for ending, refined in REFINE.items():
        if prompt.endswith(ending + "\n"):
            return refined
    raise AssertionError(f"unscripted prompt {prompt!r}")


def _prompt(task: Task) -> str:
    return PROMPT.format(question=task.question)


CONFIG = PRefLexORConfig(rounds=3, n=4, max_pairs_per_task=8)


@pytest.fixture(scope="module")
def eggs_run() -> tuple[SearchResult, ScriptedPolicy]:
    policy = ScriptedPolicy(_eggs_script)
    return PRefLexOR(CONFIG).run(policy, make_verifier("math"), [EGGS], _prompt, seed=0), policy


def _nodes(result: SearchResult) -> dict[int, dict]:
    return {n["id"]: n for n in result.trees[0]["nodes"]}


def test_rounds_are_recorded_and_chains_stop_once_verified(eggs_run):
    result, policy = eggs_run
    nodes = _nodes(result)
    chains = {}
    for node in nodes.values():
        if node["parent"] is not None:
            chains.setdefault(node["chain"], []).append((node["round"], node["outcome"]))
    # slip -> fixed (stop); right (stop); broken -> wrong -> wrong (3 rounds); lucky (false step) -> fixed
    assert chains == {
        0: [(0, False), (1, True)],
        1: [(0, True)],
        2: [(0, False), (1, False), (2, False)],
        3: [(0, False), (1, True)],
    }
    for node in nodes.values():
        if node["parent"]:
            parent = nodes[node["parent"]]
            assert node["round"] == parent["round"] + 1 and node["chain"] == parent["chain"]
    # every round is a node with its parts and verdict; the reflection of round 1 is kept apart
    fixed = next(n for n in nodes.values() if n.get("round") == 1 and n["chain"] == 0)
    assert fixed["reflection"] == "24-5 is 19, not 18."
    assert fixed["thinking"] == THINK and fixed["answer"].endswith("#### 19")
    assert fixed["verdict"] and fixed["tokens"] == len(REFINE["#### 18"].split())
    lucky = next(n for n in nodes.values() if n.get("round") == 0 and n["chain"] == 3)
    assert lucky["predicted"] == "19" and lucky["outcome"] is False and "false" in lucky["verdict"]
    # one generate call per round: round 0 for all chains, then the open chains together
    assert result.stats["search/generate_calls"] == 3 and len(policy.prompts) == 1 + 3 + 1
    assert result.stats["search/tokens"] == sum(n["tokens"] for n in nodes.values())
    assert result.stats["search/rounds"] == 8 and result.stats["search/nodes"] == 9
    # N counts the rounds below, Q the share of them verified correct
    root = nodes[0]
    assert root["N"] == 8 and root["Q"] == pytest.approx(3 / 8)
    assert nodes[1]["N"] == 2 and nodes[1]["Q"] == 0.5  # the slip and the round that fixed it
    assert result.trees[0]["stats"]["fixed"] == 2


def test_malformed_round_is_recorded_not_raised(eggs_run):
    result, _ = eggs_run
    broken = next(n for n in _nodes(result).values() if n.get("round") == 0 and n["chain"] == 2)
    assert not broken["well_formed"] and "unclosed <|thinking|>" in broken["issues"]
    assert broken["outcome"] is False
    assert result.stats["search/malformed_rate"] == pytest.approx(1 / 8)
    # four refinements followed a wrong round; two of them fixed it
    assert result.stats["search/fixed_rate"] == pytest.approx(2 / 4)
    assert result.stats["search/round0_correct_rate"] == pytest.approx(1 / 4)


def test_full_pairs_share_prompt_and_layout_and_chosen_is_verified(eggs_run):
    result, _ = eggs_run
    verifier = make_verifier("math")
    full = [p for p in result.pairs if p.metadata["kind"] == "full"]
    assert full
    for pair in full:
        assert pair.prompt == _prompt(EGGS) + THINKING_OPEN + "\n"
        for text, correct in ((pair.chosen, True), (pair.rejected, False)):
            whole = THINKING_OPEN + "\n" + text
            parse = parse_thinking(whole)
            assert parse.well_formed and parse.reflection is None  # reflections are stripped
            assert format_thinking(parse.thinking, parse.answer) == whole  # the same canonical layout
            assert verifier.check(EGGS, whole).correct is correct
    # the refinement that fixed a wrong round comes first; the malformed round is never a side
    first = full[0].metadata
    assert first["fixed"] and first["rounds"] == [0, 1] and first["chains"] == [0, 0]
    broken_id = next(n["id"] for n in _nodes(result).values() if n.get("chain") == 2 and n["round"] == 0)
    assert all(broken_id not in (p.metadata["chosen_id"], p.metadata["rejected_id"]) for p in result.pairs)
    # the false-annotation round (right answer, 4*6=25) is only ever rejected
    lucky_id = next(n["id"] for n in _nodes(result).values() if n.get("chain") == 3 and n["round"] == 0)
    assert all(p.metadata["chosen_id"] != lucky_id for p in result.pairs)
    assert any(p.metadata["rejected_id"] == lucky_id for p in full)


def test_step_pairs_share_exactly_the_prefix_up_to_the_first_wrong_line(eggs_run):
    result, _ = eggs_run
    verifier = make_verifier("math")
    step = {p.metadata["rejected_id"]: p for p in result.pairs if p.metadata["kind"] == "step"}
    nodes = _nodes(result)
    slip = next(n["id"] for n in nodes.values() if n.get("chain") == 0 and n["round"] == 0)
    pair = step[slip]
    # the prompt holds the thinking and the right first line; the sides start at the slip
    assert pair.prompt == _prompt(EGGS) + SLIP.split("He eats")[0]
    assert pair.prompt.endswith(LINE_1 + "\n") and pair.metadata["line"] == 1
    assert pair.rejected == "He eats 5, so 24-5=<<24-5=18>>18 eggs.\n#### 18"
    assert pair.chosen == "He eats 5, so 24-5=<<24-5=19>>19 eggs.\n#### 19"
    assert pair.metadata["fixed"]
    for p in step.values():
        head = p.prompt[len(_prompt(EGGS)) :]
        assert head + p.rejected == nodes[p.metadata["rejected_id"]]["text"].split("<|/reflect|>\n")[-1]
        assert verifier.check(EGGS, head + p.chosen).correct
        assert not verifier.check(EGGS, head + p.rejected).correct
    # the false step 4*6=25 is wrong at line 0: the prompt ends with the thinking block
    lucky = next(n["id"] for n in nodes.values() if n.get("chain") == 3 and n["round"] == 0)
    assert step[lucky].metadata["line"] == 0 and step[lucky].prompt.endswith("<|/thinking|>\n")
    # a wrong round whose thinking no correct round shares gets no step pair (its plan, not a step, failed)
    other_plan = next(n["id"] for n in nodes.values() if n.get("chain") == 2 and n["round"] == 1)
    assert other_plan not in step


def test_first_wrong_line_by_value_and_by_false_step():
    verifier = make_verifier("math")
    right = ["a 2*3=<<2*3=6>>6", "b 6+1=<<6+1=7>>7", "#### 7"]
    assert first_wrong_line(EGGS, ["a 2*3=<<2*3=6>>6", "b 6+2=<<6+2=8>>8", "#### 8"], right, verifier) == 1
    false_step = ["a 2*4=<<2*4=6>>6", "b 6+2=<<6+2=8>>8", "#### 8"]  # 2*4 is not 6, yet 6 is right's value
    assert first_wrong_line(EGGS, false_step, right, verifier) == 0
    assert first_wrong_line(EGGS, false_step, right, None) == 1  # without a step verifier: by value only
    assert first_wrong_line(EGGS, right[:2], right, verifier) is None


def test_the_verifier_decides_what_is_correct():
    # under "math-answer" the 4*6=25 round is correct; under the strict default it is not (above)
    policy = ScriptedPolicy(_eggs_script)
    result = PRefLexOR(CONFIG).run(policy, make_verifier("math-answer"), [EGGS], _prompt, seed=0)
    lucky = next(n for n in _nodes(result).values() if n.get("chain") == 3 and n["round"] == 0)
    assert lucky["outcome"] is True and len(_nodes(result)) == 8  # chain 3 stopped at round 0


def test_no_early_stop_refines_correct_rounds_too():
    config = dataclasses.replace(CONFIG, rounds=2, early_stop=False)
    policy = ScriptedPolicy(_eggs_script)
    result = PRefLexOR(config).run(policy, make_verifier("math"), [EGGS], _prompt, seed=0)
    rounds = [n for n in _nodes(result).values() if n.get("round") == 1]
    assert len(rounds) == 4  # every chain got its second round, the right one included
    assert result.stats["search/broken_rate"] == 0.0  # the right chain stayed right


def test_a_refined_round_is_shown_to_the_next_as_a_whole_attempt():
    # round 1 rewrites only its Plan line and is wrong again; round 2 must see it as the warm start's
    # reflection examples show an attempt: no reflection, and the Concepts and Known lines of round 0
    refined_plan = "Plan: 6*4, 24-5"
    again_wrong = [LINE_1, "He eats 5, so 24-5=<<24-5=17>>17 eggs.", "#### 17"]
    script = {
        THINKING_OPEN + "\n": SLIP[len(THINKING_OPEN) + 1 :],
        "#### 18\n": _round(again_wrong, thinking=refined_plan, reflection="24-5 is not 18."),
        "#### 17\n": REFINE["#### 18"],
    }
    policy = ScriptedPolicy(lambda prompt, i: next(v for k, v in script.items() if prompt.endswith(k)))
    config = dataclasses.replace(CONFIG, n=1)
    result = PRefLexOR(config).run(policy, make_verifier("math"), [EGGS], _prompt, seed=0)
    outcomes = [n["outcome"] for n in _nodes(result).values() if n.get("round") is not None]
    assert outcomes == [False, False, True]
    whole = "Concepts: count, total\nKnown: 6 eggs a box, 4 boxes, 5 eaten\n" + refined_plan
    assert policy.prompts == [
        _prompt(EGGS) + THINKING_OPEN + "\n",
        _prompt(EGGS) + SLIP + "\n",  # round 0 is shown as written
        _prompt(EGGS) + _round(again_wrong, thinking=whole) + "\n",
    ]


def test_carried_thinking_keeps_the_lines_a_refinement_did_not_rewrite():
    earlier = "Concepts: count\nKnown: 6 a box\nPlan: 4*6"
    assert carried_thinking(earlier, "Plan: 6*4") == "Concepts: count\nKnown: 6 a box\nPlan: 6*4"
    assert carried_thinking(earlier, "Known: 4 boxes\nCheck: 24") == (
        "Concepts: count\nKnown: 4 boxes\nPlan: 4*6\nCheck: 24"
    )
    assert carried_thinking(earlier, "I will multiply first.") == "I will multiply first."  # free-form
    assert carried_thinking("", "Plan: 6*4") == "Plan: 6*4"


def test_token_budget_stops_at_task_granularity():
    tasks = [dataclasses.replace(EGGS, id=f"eggs-{i}") for i in range(3)]
    config = dataclasses.replace(CONFIG, trees_per_batch=2)
    result = PRefLexOR(config).run(
        ScriptedPolicy(_eggs_script), make_verifier("math"), tasks, _prompt, seed=0, token_budget=1
    )
    assert [t["task_id"] for t in result.trees] == ["eggs-0", "eggs-1"]


def test_samples_are_the_rounds_in_pair_layout(eggs_run):
    result, _ = eggs_run
    correct = [s for s in result.samples if s.correct]
    assert correct and all(s.prompt == _prompt(EGGS) for s in result.samples)
    assert {s.completion for s in correct} == {RIGHT}  # the three correct rounds are one text
    assert all("<|reflect|>" not in s.completion for s in result.samples)


# ---------------------------------------------------------------------------------------------------------
# the knowledge graph: built, grown, returned; retrieval without the task's own solution


def test_graph_is_grown_returned_and_retrieval_never_shows_the_task_itself(tmp_path):
    from selfimprove.tasks.recipe import load_recipe, load_tasks

    tasks = load_tasks(load_recipe("arith"), "train", 6, seed=1, steps=2)
    policy = ScriptedPolicy(lambda prompt, i: "Known: -\nPlan: -\n<|/thinking|>\n#### 0")
    config = dataclasses.replace(CONFIG, rounds=1, n=1, retrieval=True)
    result = PRefLexOR(config).run(policy, make_verifier("math"), tasks, _prompt, seed=0)
    graph = result.artifacts["knowledge_graph"]
    built = KnowledgeGraph.build(tasks)
    # built from the tasks' gold solutions; the six wrong rounds add usage statistics, not relations
    assert graph.summary() == built.summary()
    assert sum(d["uses"] for *_, d in graph.graph.edges(data=True)) > 0
    assert sum(d["uses"] for *_, d in built.graph.edges(data=True)) == 0
    for task, prompt, tree in zip(tasks, policy.prompts, result.trees, strict=True):
        assert prompt == _prompt(task) + tree["head"]
        assert tree["head"].startswith(THINKING_OPEN + "\nConcepts: ")
        assert task.solution not in prompt and task.id not in tree["retrieval"]["examples"]
        if tree["retrieval"]["examples"]:
            example = tree["retrieval"]["examples"][0]
            assert f"Example: {graph.solved[example]['plan']}\n" in tree["head"]
    # a given graph starts the search and is not mutated; the grown copy comes back
    before = built.to_node_link()
    again = PRefLexOR(config, graph=built).run(policy, make_verifier("math"), tasks, _prompt, seed=0)
    assert built.to_node_link() == before
    assert again.artifacts["knowledge_graph"].to_node_link() != before
    # the loop hands a saved graph to the next iteration's search through with_artifacts
    assert PRefLexOR(config).with_artifacts(tmp_path).graph is None  # nothing saved there yet
    graph.save(tmp_path / "knowledge_graph.json")
    assert PRefLexOR(config).with_artifacts(tmp_path).graph.to_node_link() == graph.to_node_link()


def test_verified_rounds_count_as_right_uses(eggs_run):
    graph = eggs_run[0].artifacts["knowledge_graph"]
    counts = [
        (d["uses"], d["correct"]) for *_, d in graph.graph.edges(data=True) if d["type"] == "computed_by"
    ]
    assert all(0 <= correct <= uses for uses, correct in counts)
    assert max(correct for _, correct in counts) >= 3  # the three verified rounds used both relations


def test_practice_questions_join_the_search_only_when_verified():
    from selfimprove.tasks.recipe import load_recipe, load_tasks

    config = dataclasses.replace(CONFIG, rounds=1, n=1, practice_questions=4)
    policy = ScriptedPolicy(lambda prompt, i: "Known: -\nPlan: -\n<|/thinking|>\n#### 0")
    verifier = make_verifier("math")
    # the eggs question fits no generator template: its practice questions have no computed answer
    unverified = KnowledgeGraph.build([EGGS]).practice_questions(4, seed=2)
    assert unverified and not any(t.metadata["verified"] for t in unverified)
    alone = PRefLexOR(config).run(policy, verifier, [EGGS], _prompt, seed=2)
    assert [t["task_id"] for t in alone.trees] == ["eggs"] and alone.stats["search/practice_questions"] == 0
    tasks = load_tasks(load_recipe("arith"), "train", 4, seed=0, steps=2)
    made = [t for t in KnowledgeGraph.build(tasks).practice_questions(4, seed=2) if t.metadata["verified"]]
    result = PRefLexOR(config).run(policy, verifier, tasks, _prompt, seed=2)
    assert made and [t["task_id"] for t in result.trees] == [t.id for t in tasks] + [t.id for t in made]
    assert result.stats["search/practice_questions"] == len(made)


# ---------------------------------------------------------------------------------------------------------
# union, recipes


def _plain_script(prompt: str, i: int) -> str:
    if THINKING_OPEN in prompt:
        return _eggs_script(prompt, i)
    return ["He buys 24 eggs.\n#### 18", EGGS.solution][i % 2]


def test_union_unites_pairs_and_samples_on_split_budgets():
    union = search_from_mapping(
        {
            "type": "union",
            "members": {
                "bon": {"type": "best_of_n", "share": 0.25, "n": 2},
                "pre": {"type": "preflexor", "share": 0.75, "rounds": 3, "n": 4, "max_pairs_per_task": 8},
            },
        },
        where="test",
    )
    assert isinstance(union, UnionSearch)
    budgets = []

    class Budgeted(BestOfN):
        def run(self, *args, token_budget=None, **kwargs):
            budgets.append(token_budget)
            return super().run(*args, token_budget=token_budget, **kwargs)

    union.members[0] = ("bon", 0.25, Budgeted(BestOfNConfig(n=2)))
    verifier = make_verifier("math")
    result = union.run(ScriptedPolicy(_plain_script), verifier, [EGGS], _prompt, seed=3, token_budget=1000)
    assert budgets == [250]
    alone_bon = BestOfN(BestOfNConfig(n=2)).run(
        ScriptedPolicy(_plain_script), verifier, [EGGS], _prompt, seed=3
    )
    alone_pre = PRefLexOR(CONFIG).run(ScriptedPolicy(_plain_script), verifier, [EGGS], _prompt, seed=3 + 7919)
    assert [(p.prompt, p.chosen, p.rejected) for p in result.pairs] == [
        (p.prompt, p.chosen, p.rejected) for p in alone_bon.pairs + alone_pre.pairs
    ]
    assert [t["task_id"] for t in result.trees] == ["bon/eggs", "pre/eggs"]
    assert {p.metadata["tree_id"] for p in result.pairs} == {"bon/eggs", "pre/eggs"}
    assert len(result.samples) == len(alone_bon.samples) + len(alone_pre.samples)
    tokens = alone_bon.stats["search/tokens"] + alone_pre.stats["search/tokens"]
    assert result.stats["search/tokens"] == tokens
    assert result.stats["search/pre/fixed_rate"] == alone_pre.stats["search/fixed_rate"]
    assert set(result.artifacts) == {"knowledge_graph"}


def test_recipes_load_and_errors_name_the_key(tmp_path):
    search = load_search(REPO / "searches" / "preflexor.toml")
    assert isinstance(search, PRefLexOR) and search.config == PRefLexORConfig()
    union = load_search(REPO / "searches" / "mcts_preflexor.toml")
    assert isinstance(union, UnionSearch) and [m[0] for m in union.members] == ["mcts", "preflexor"]
    resolved = search_to_mapping(union)
    assert (
        resolved["members"]["mcts"]["simulations"] == 20 and resolved["members"]["preflexor"]["share"] == 0.5
    )
    assert search_to_mapping(search_from_mapping(resolved, where="again")) == resolved
    bad = tmp_path / "bad.toml"
    for text, message in [
        ('type = "preflexor"\nbogus = 1\n', r"bad\.toml: unknown key\(s\) \['bogus'\]"),
        ('type = "preflexor"\nrounds = 0\n', "preflexor.rounds must be >= 1"),
        ('type = "preflexor"\npair_kinds = ["best"]\n', r"unknown \['best'\]"),
        ('type = "union"\n[members.a]\ntype = "mcts"\nshare = 0.5\n', "shares must sum to 1"),
        ('type = "union"\n[members.a]\ntype = "mcts"\n', r"union\.members\.a\.share must be a number"),
        ('type = "union"\n[members.a]\ntype = "mcts"\nshare = 1\nwho = 2\n', r"union\.members\.a: unknown"),
        (
            'type = "union"\n[members.a]\ntype = "preflexor"\nshare = 0.5\n'
            '[members.b]\ntype = "preflexor"\nshare = 0.5\n',
            "both keep a 'knowledge_graph'",
        ),
    ]:
        bad.write_text(text)
        with pytest.raises(ValueError, match=message):
            load_search(bad)


def test_run_configs_carry_the_search_and_the_loss_options():
    from selfimprove.config import dump_toml, parse_toml, to_mapping
    from selfimprove.loop.config import resolve_config

    config = resolve_config("default", REPO / "configs" / "preflexor_masked.toml")
    assert config.search["type"] == "preflexor" and config.search["retrieval"] is True
    assert config.train.mask_spans == (("<|thinking|>", "<|/thinking|>", 0.0),)
    orpo = resolve_config("default", overrides={"train": {"loss": "orpo"}, "search": {"type": "union"}})
    assert orpo.train.loss == "orpo" and set(orpo.search["members"]) == {"mcts", "preflexor"}
    # the resolved config (written to the run folder as TOML) reads back the same
    for c in (config, orpo):
        assert resolve_config("default", overrides=parse_toml(dump_toml(to_mapping(c)), where="t")) == c


# ---------------------------------------------------------------------------------------------------------
# the viewer shows refinement chains


def test_viewer_shows_rounds(eggs_run, tmp_path):
    from rich.console import Console

    from selfimprove.viz import load_input, render_dot, render_html, render_text, write_html, write_viewer

    result, _ = eggs_run
    write_search_result(result, tmp_path)
    data = load_input(tmp_path)
    tree = data.iterations[0].trees[0]
    assert tree.tree["structure"] == "refinement" and len(tree.pairs) == len(result.pairs)
    page = render_html(data)
    assert "showRound" in page and '"reflection":"24-5 is 19, not 18."' in page
    console = Console(width=200, no_color=True, record=True)
    for rich_tree in render_text(data):
        console.print(rich_tree)
    text = console.export_text()
    assert "round 1 of chain 0" in text and "✗ [rejected]" in text and "✓ [chosen]" in text
    assert render_dot(data).count("peripheries") == 8  # every round carries its verdict
    # the viewer links the iteration's knowledge-graph page, which it writes from knowledge_graph.json
    assert '"knowledge":null' in page
    result.artifacts["knowledge_graph"].save(tmp_path / "knowledge_graph.json")
    viewer = write_html(load_input(tmp_path), tmp_path / "viewer.html")
    assert (tmp_path / "knowledge_graph.html").exists()
    assert '"knowledge":"knowledge_graph.html"' in viewer.read_text()
    run = tmp_path / "run"
    shutil.copytree(tmp_path, run / "iter_001", ignore=shutil.ignore_patterns("run"))
    assert '"knowledge":"iter_001/knowledge_graph.html"' in write_viewer(run).read_text()
    (run / "iter_001" / "knowledge_graph.json").write_text("{}")  # unreadable: trees shown, no link
    assert '"knowledge":null' in write_viewer(run).read_text()


# ---------------------------------------------------------------------------------------------------------
# the real model, and the loop's hand-over of the graph between iterations


def test_real_model_records_every_round_and_counts_tokens(trained_tiny_path):
    from selfimprove.policy.hf import HFPolicy
    from selfimprove.tasks.recipe import format_prompt, load_recipe, load_tasks

    recipe = load_recipe("arith")
    tasks = load_tasks(recipe, "train", 3, seed=5, steps=1)
    policy = HFPolicy.from_pretrained(trained_tiny_path)
    config = PRefLexORConfig(rounds=2, n=2, max_round_tokens=40, retrieval=True)
    run = lambda: PRefLexOR(config).run(  # noqa: E731
        policy, make_verifier("math"), tasks, lambda t: format_prompt(recipe, t), seed=4
    )
    result = run()
    rounds = [n for t in result.trees for n in t["nodes"] if n["parent"] is not None]
    assert len(rounds) == result.stats["search/rounds"] >= len(tasks) * config.n
    assert result.stats["search/tokens"] == sum(n["tokens"] for n in rounds) > 0
    malformed = sum(not n["well_formed"] for n in rounds)
    assert result.stats["search/malformed_rate"] == pytest.approx(malformed / len(rounds))
    for n in rounds:
        assert n["well_formed"] == (not n["issues"])
        assert n["outcome"] is False or n["well_formed"]
    for pair in result.pairs:
        assert (
            make_verifier("math")
            .check(
                next(t for t in tasks if t.id == pair.metadata["task_id"]),
                pair.prompt.split("Answer:\n", 1)[1] + pair.chosen,
            )
            .correct
        )
    again = run()
    assert [t["nodes"] for t in again.trees] == [t["nodes"] for t in result.trees]  # the seed reproduces


def test_loop_persists_the_graph_and_the_next_iteration_starts_from_it(
    tmp_path, trained_tiny_path, monkeypatch
):
    from selfimprove.loop.config import resolve_config
    from selfimprove.loop.run import _materialise_model, prepare_run, run_search_phase

    config = resolve_config(
        "smoke",
        overrides={
            "task": {"tasks_per_iteration": 3},
            "search": {"type": "preflexor", "rounds": 2, "n": 2, "max_round_tokens": 32},
        },
    )
    paths = prepare_run(config, tmp_path / "run")
    _materialise_model(config, paths)
    first = run_search_phase(config, paths, 1, None)
    saved = paths.iteration(1) / "knowledge_graph.json"
    assert saved.exists() and first["search/rounds"] >= 3 * 2
    json.loads(saved.read_text())  # node-link JSON
    shutil.copytree(paths.model, paths.iteration(1) / "checkpoint")
    seen = []
    original = PRefLexOR.run

    def spy(self, *args, **kwargs):
        seen.append(self.graph)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(PRefLexOR, "run", spy)
    run_search_phase(config, paths, 2, None)
    assert seen[0] is not None and seen[0].summary() == KnowledgeGraph.load(saved).summary()
    assert (paths.iteration(2) / "knowledge_graph.json").exists()
