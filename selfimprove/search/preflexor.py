"""PRefLexOR recursive thinking search: verified refinement rounds and same-format preference pairs.

After PRefLexOR (Buehler, 2024, "Preference-based Recursive Language Modeling for Exploratory Optimization
of Reasoning and Agentic Thinking", arXiv:2410.12375). For each task, n independent chains:

1. round 0  - prompt = question prompt + "<|thinking|>\\n" (+ the knowledge graph's retrieval prefix); the
              policy writes its thinking, closes it, and writes the answer lines (GSM8K format, `#### N`).
2. round r  - for a chain whose last round is not verified correct (during training a chain stops once it
              is), prompt = question prompt + previous round + "\\n": the policy reflects on it
              (`<|reflect|>...<|/reflect|>`), then writes refined thinking and an answer. A refined round
              is shown to the next one as a round-0 attempt is: without its reflection, and with the
              thinking lines it did not rewrite carried over from the attempt it refined.
3. verify   - every round is parsed (tasks/thinking.py; malformed output is recorded, never raised) and
              its thinking + answer (the reflection left out, since a reflection may quote the wrong step it
              corrects) is judged by the verifier. A round counts as correct only when it is well formed,
              ended by the end token, and verified.
4. pairs    - "full": the same prompt (question prompt + "<|thinking|>\\n" [+ retrieval prefix]) on both
              sides, chosen = a verified-correct round's thinking + answer, rejected = an incorrect
              round's, both re-laid out by `format_thinking`, so the two sides differ in content only.
              Preferred: (a wrong round, the later round of its chain that fixed it), then other chains.
              "step": for a wrong round and a verified-correct round with the same thinking, the prompt
              carries the shared thinking and the answer lines up to the wrong round's first wrong line (a
              step the step verifier proves false, or whose value differs from the correct round's); the
              sides continue from there to the end: the correct round's lines (the spliced solution is
              verified again) against the wrong round's (the wrong round itself).

Fixes over the reference code: the chosen side is always verified (answer and every `<<a*b=c>>` step), the
rejected side has exactly the chosen side's format, and the knowledge graph (selfimprove/knowledge) is a
parsed, persisted networkx graph: built from the searched tasks' gold solutions (or continued from the
previous iteration's graph), grown with every verified round, returned in `SearchResult.artifacts` for the
run folder, used for retrieval into the thinking block and, optionally, for verified practice questions.

Retrieval never shows a task its own gold solution: its concepts come from the question alone, and its
example is the plan of another solved problem (the task itself, and any problem with the same question
text, are excluded), so the searched tasks' gold solutions can be the graph's corpus.

Tokens are counted through `accounting.Counter`, as in MCTS and best-of-n, so budgets compare.
"""

from __future__ import annotations

import copy
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selfimprove.knowledge import KnowledgeGraph, Retrieval
from selfimprove.policy.base import Policy
from selfimprove.records import PreferencePair
from selfimprove.search.accounting import Counter
from selfimprove.search.base import Sample, SearchProgress, SearchResult
from selfimprove.tasks.task import Task
from selfimprove.tasks.thinking import THINKING_OPEN, ThinkingParse, format_thinking, parse_thinking
from selfimprove.verify.base import StepVerifier, Verdict, Verifier

logger = logging.getLogger(__name__)

PAIR_KINDS = ("full", "step")
GRAPH_FILE = "knowledge_graph.json"  # the artifact's file in an iteration folder
_CUT_OFF = "cut off at max_round_tokens"


@dataclass(frozen=True)
class PRefLexORConfig:
    rounds: int = 3  # rounds per chain, round 0 included (1: thinking and answer, no refinement)
    n: int = 4  # chains per task: round-0 samples; each chain is refined on its own
    temperature: float = 1.0
    top_p: float = 1.0
    max_round_tokens: int = 256  # generated tokens per round (reflection, thinking and answer)
    early_stop: bool = True  # stop refining a chain once a round is verified correct
    retrieval: bool = False  # put the knowledge graph's "Concepts: ..." (and "Example: ...") into the prompt
    retrieval_examples: int = 1  # solved examples a retrieval may name
    practice_questions: int = 0  # questions composed from the graph; only verified ones are searched
    pair_kinds: tuple[str, ...] = ("full", "step")
    max_pairs_per_task: int = 4  # per kind
    trees_per_batch: int = 32  # tasks whose rounds are generated together, one generate call per round
    graph: str = ""  # a node-link JSON graph to start from; "" builds one from the searched tasks

    def __post_init__(self) -> None:
        for name in ("rounds", "n", "max_round_tokens", "trees_per_batch", "retrieval_examples"):
            if getattr(self, name) < 1:
                raise ValueError(f"preflexor.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("practice_questions", "max_pairs_per_task"):
            if getattr(self, name) < 0:
                raise ValueError(f"preflexor.{name} must be >= 0, got {getattr(self, name)}")
        if self.temperature < 0 or not 0 < self.top_p <= 1:
            raise ValueError(
                f"need temperature >= 0 and 0 < top_p <= 1, got {self.temperature}, {self.top_p}"
            )
        unknown = [k for k in self.pair_kinds if k not in PAIR_KINDS]
        if unknown:
            raise ValueError(f"preflexor.pair_kinds: unknown {unknown}; choose from {list(PAIR_KINDS)}")


# ---------------------------------------------------------------------------------------------------------
# rounds and their trees


@dataclass(frozen=True)
class Round:
    """One round of one chain, as generated and judged; `round_prompt` shows it to the next round."""

    id: int  # node id in the task's tree (the root, the bare prompt, is 0)
    parent: int  # the round this one refines, 0 for round 0
    chain: int
    round: int
    text: str  # round 0: from "<|thinking|>" on; round r >= 1: from the reflection on
    parse: ThinkingParse
    finished: bool  # ended by the end token, not cut off at max_round_tokens
    num_tokens: int
    logprob: float
    verdict: Verdict | None  # None when there is nothing to check against (no gold answer)

    @property
    def well_formed(self) -> bool:
        return self.finished and self.parse.well_formed

    @property
    def issues(self) -> tuple[str, ...]:
        return self.parse.issues + (() if self.finished else (_CUT_OFF,))

    @property
    def solution(self) -> str | None:
        """Thinking + answer in the canonical layout (no reflection): the text pairs and samples carry."""
        if not self.well_formed:
            return None
        return format_thinking(self.parse.thinking or "", self.parse.answer)

    @property
    def outcome(self) -> bool | None:
        """True only for a well-formed round the verifier accepted; None when it was not verified."""
        if self.verdict is None:
            return None
        return self.well_formed and self.verdict.correct


@dataclass
class RefinementTree:
    """A task's chains: the root is the question prompt, each round a child of the round it refines."""

    task: Task
    prompt: str  # the question prompt (prompt_fn(task))
    head: str  # what round 0 starts with: "<|thinking|>\n" + the retrieval prefix
    retrieval: Retrieval | None = None
    rounds: list[Round] = field(default_factory=list)

    def children(self, node_id: int) -> list[Round]:
        return [r for r in self.rounds if r.parent == node_id and r.id != node_id]

    def descendants(self, node: Round) -> list[Round]:
        """Rounds that refine `node`, directly or not, nearest first."""
        out, frontier = [], self.children(node.id)
        while frontier:
            out.extend(frontier)
            frontier = [c for r in frontier for c in self.children(r.id)]
        return out

    def open_chains(self, *, rounds: int, early_stop: bool) -> list[Round]:
        """The last round of every chain that gets another round."""
        last = [r for r in self.rounds if not self.children(r.id)]
        return [r for r in last if r.round + 1 < rounds and not (early_stop and r.outcome is True)]

    def to_dict(self, search: str) -> dict[str, Any]:
        """The common tree JSON (search/tree.py's fields) plus each round's parts and verdict.

        N of a node counts the rounds in its subtree (itself included) and Q the fraction of them verified
        correct, so the root's Q is the search's accuracy over all rounds of this task.
        """
        counts: dict[int, tuple[int, int]] = {}  # node id -> (rounds, correct rounds) in its subtree
        for r in sorted(self.rounds, key=lambda r: -r.id):
            below = [counts[c.id] for c in self.children(r.id)]
            counts[r.id] = (
                1 + sum(n for n, _ in below),
                int(r.outcome is True) + sum(c for _, c in below),
            )
        top = [counts[r.id] for r in self.children(0)]
        root_n, root_correct = sum(n for n, _ in top), sum(c for _, c in top)
        root = {
            "id": 0,
            "parent": None,
            "text": "",
            "depth": 0,
            "prior": 1.0,
            "logprob": 0.0,
            "tokens": 0,
            "duplicates": 1,
            "N": root_n,
            "Q": root_correct / root_n if root_n else 0.0,
            "value": None,
            "evaluations": 0,
            "terminal": False,
            "outcome": None,
            "pruned": False,
            "children": [r.id for r in self.children(0)],
            "rollouts": [],
        }
        nodes = [root]
        for r in self.rounds:
            n, correct = counts[r.id]
            siblings = len(self.children(r.parent))
            nodes.append(
                {
                    "id": r.id,
                    "parent": r.parent,
                    "text": r.text,
                    "depth": r.round + 1,
                    "prior": 1.0 / siblings,
                    "logprob": r.logprob,
                    "tokens": r.num_tokens,
                    "duplicates": 1,
                    "N": n,
                    "Q": correct / n,
                    "value": None if r.outcome is None else float(r.outcome),
                    "evaluations": 1,
                    "terminal": not self.children(r.id),
                    "outcome": r.outcome,
                    "pruned": False,
                    "children": [c.id for c in self.children(r.id)],
                    "rollouts": [],
                    # the refinement round
                    "round": r.round,
                    "chain": r.chain,
                    "reflection": r.parse.reflection,
                    "thinking": r.parse.thinking,
                    "answer": r.parse.answer,
                    "well_formed": r.well_formed,
                    "issues": list(r.issues),
                    "verdict": None if r.verdict is None else r.verdict.detail,
                    "predicted": None if r.verdict is None else r.verdict.predicted,
                }
            )
        return {
            "task_id": self.task.id,
            "question": self.task.question,
            "answer": self.task.answer,
            "steps": self.task.steps,
            "prompt": self.prompt,
            "search": search,
            "structure": "refinement",  # nodes are rounds, each refining its parent (not steps of a solution)
            "delimiter": "\n",
            "head": self.head,
            "retrieval": None
            if self.retrieval is None
            else {
                "concepts": list(self.retrieval.concepts),
                "relations": list(self.retrieval.relations),
                "examples": list(self.retrieval.examples),
            },
            "stats": refinement_stats(self),
            "nodes": nodes,
        }


def refinement_stats(tree: RefinementTree) -> dict[str, float]:
    refinements = [r for r in tree.rounds if r.round > 0]
    return {
        "nodes": len(tree.rounds) + 1,
        "depth": max((r.round + 1 for r in tree.rounds), default=0),
        "chains": len(tree.children(0)),
        "rounds": len(tree.rounds),
        "tokens": sum(r.num_tokens for r in tree.rounds),
        "solved": any(r.outcome is True for r in tree.rounds),
        "root_q": sum(r.outcome is True for r in tree.rounds) / len(tree.rounds) if tree.rounds else 0.0,
        "malformed": sum(not r.well_formed for r in tree.rounds),
        "fixed": sum(r.outcome is True for r in refinements if _parent(tree, r).outcome is False),
    }


def _parent(tree: RefinementTree, node: Round) -> Round:
    return next(r for r in tree.rounds if r.id == node.parent)


# ---------------------------------------------------------------------------------------------------------
# generating and judging rounds


_THINKING_KEY = re.compile(r"([A-Z][A-Za-z ]*):")


def carried_thinking(earlier: str, refined: str) -> str:
    """The refined thinking, with the lines it did not rewrite carried over from the earlier thinking.

    A refinement rewrites what changes: the warm start's refined rounds write their Plan line only, since
    the Concepts and Known lines are in the attempt just above. Every "Key: ..." line of the earlier
    thinking is kept, or replaced by the refined lines of the same key; the refined lines of new keys
    follow. Thinking that is not all keyed lines has nothing to align and is the refined one.
    """
    refined_lines = refined.splitlines()
    keyed: dict[str, list[str]] = {}
    for line in refined_lines:
        match = _THINKING_KEY.match(line)
        if match is None:
            return refined
        keyed.setdefault(match.group(1), []).append(line)
    out: list[str] = []
    placed: set[str] = set()
    for line in earlier.splitlines():
        match = _THINKING_KEY.match(line)
        key = match.group(1) if match else None
        if key not in keyed:
            out.append(line)
        elif key not in placed:
            out.extend(keyed[key])
            placed.add(key)
    out.extend(line for key, lines in keyed.items() if key not in placed for line in lines)
    return "\n".join(out)


def _whole_thinking(tree: RefinementTree, node: Round) -> str:
    thinking = node.parse.thinking or ""
    if node.round == 0:
        return thinking
    return carried_thinking(_whole_thinking(tree, _parent(tree, node)), thinking)


def round_prompt(tree: RefinementTree, previous: Round | None) -> str:
    """Round 0 continues the head; round r >= 1 reads the previous round and reflects on it.

    The previous round is shown as the warm start's reflection examples show an attempt, a round-0 round:
    a refined round without its reflection, its thinking completed by `carried_thinking`. Shown as written,
    with a reflection the model never saw in an attempt, a third of the third rounds came out malformed.
    """
    if previous is None:
        return tree.prompt + tree.head
    if previous.round == 0 or not previous.well_formed:
        return tree.prompt + previous.text + "\n"
    attempt = format_thinking(_whole_thinking(tree, previous), previous.parse.answer)
    return tree.prompt + attempt + "\n"


def judge(
    task: Task, text: str, finished: bool, verifier: Verifier | None
) -> tuple[ThinkingParse, Verdict | None]:
    """Parse a round and verify its thinking + answer (the reflection is left out: it may quote the slip
    it corrects); a malformed round is still verified, for the record, on its text from the thinking on."""
    parse = parse_thinking(text)
    if verifier is None:
        return parse, None
    if finished and parse.well_formed:
        judged = format_thinking(parse.thinking or "", parse.answer)
    else:
        start = text.find(THINKING_OPEN)
        judged = text[start:] if start >= 0 else text
    return parse, verifier.check(task, judged)


def generate_rounds(
    policy: Policy,
    trees: Sequence[RefinementTree],
    config: PRefLexORConfig,
    *,
    verifier: Verifier | None,
    seed: int,
    counter: Counter,
) -> None:
    """Every round of every chain of `trees`: one generate call for round 0, one per later round."""
    groups = counter.generate(
        policy,
        [round_prompt(tree, None) for tree in trees],
        n=config.n,
        max_new_tokens=config.max_round_tokens,
        temperature=config.temperature,
        top_p=config.top_p,
        stop=(),
        seed=seed,
    )
    for tree, completions in zip(trees, groups, strict=True):
        for chain, completion in enumerate(completions):
            text = tree.head + completion.text
            _add_round(tree, None, chain, text, completion, verifier)
    for round_index in range(1, config.rounds):
        work = [
            (tree, last)
            for tree in trees
            for last in tree.open_chains(rounds=config.rounds, early_stop=config.early_stop)
        ]
        if not work:
            return
        groups = counter.generate(
            policy,
            [round_prompt(tree, last) for tree, last in work],
            n=1,
            max_new_tokens=config.max_round_tokens,
            temperature=config.temperature,
            top_p=config.top_p,
            stop=(),
            seed=seed * 100_003 + round_index,
        )
        for (tree, last), (completion,) in zip(work, groups, strict=True):
            _add_round(tree, last, last.chain, completion.text, completion, verifier)


def _add_round(tree, previous, chain, text, completion, verifier) -> None:
    finished = completion.finish_reason != "length"
    parse, verdict = judge(tree.task, text, finished, verifier)
    tree.rounds.append(
        Round(
            id=len(tree.rounds) + 1,
            parent=0 if previous is None else previous.id,
            chain=chain,
            round=0 if previous is None else previous.round + 1,
            text=text,
            parse=parse,
            finished=finished,
            num_tokens=completion.num_tokens,
            logprob=completion.logprob,
            verdict=verdict,
        )
    )


# ---------------------------------------------------------------------------------------------------------
# pairs


def _shared_head(tree: RefinementTree, *texts: str) -> str:
    """The longest of (round-0 head, "<|thinking|>\\n") every text starts with: it goes into the prompt."""
    for head in (tree.head, THINKING_OPEN + "\n"):
        if all(t.startswith(head) for t in texts):
            return head
    return ""


def _ordered_candidates(tree: RefinementTree) -> list[tuple[Round, Round, bool]]:
    """(rejected, chosen, fixed) in order of preference: a wrong round with the nearest later round of its
    chain that fixed it first, then each remaining wrong round with a correct round of another chain."""
    correct = [r for r in tree.rounds if r.outcome is True]
    wrong = [r for r in tree.rounds if r.outcome is False and r.well_formed]
    if not correct or not wrong:
        return []
    fixes: list[tuple[int, Round, Round]] = []
    unfixed: list[Round] = []
    for w in wrong:
        fix = next(
            ((distance, d) for distance, d in enumerate(tree.descendants(w), 1) if d.outcome is True), None
        )
        if fix is None:
            unfixed.append(w)
        else:
            fixes.append((fix[0], w, fix[1]))
    ordered = [(w, c, True) for _, w, c in sorted(fixes, key=lambda f: (f[0], f[1].id))]
    ordered += [(w, correct[i % len(correct)], False) for i, w in enumerate(unfixed)]
    return ordered


def _meta(tree: RefinementTree, rejected: Round, chosen: Round, fixed: bool, kind: str) -> dict[str, Any]:
    return {
        "source": "preflexor",
        "task_id": tree.task.id,
        "tree_id": tree.task.id,
        "kind": kind,
        "node_id": 0,
        "chosen_id": chosen.id,
        "rejected_id": rejected.id,
        "rounds": [rejected.round, chosen.round],
        "chains": [rejected.chain, chosen.chain],
        "fixed": fixed,  # the chosen round is the refinement (of the chain) that fixed the rejected one
        "q_chosen": 1.0,
        "q_rejected": 0.0,
    }


def full_pairs(tree: RefinementTree, *, max_pairs: int) -> list[PreferencePair]:
    """Verified-correct vs incorrect rounds, thinking + answer each, after the same prompt."""
    pairs: list[PreferencePair] = []
    seen: set[tuple[str, str]] = set()
    for rejected, chosen, fixed in _ordered_candidates(tree):
        if len(pairs) >= max_pairs:
            break
        good, bad = chosen.solution, rejected.solution
        assert good is not None and bad is not None  # both are well formed by construction
        if (good, bad) in seen or good == bad:
            continue
        seen.add((good, bad))
        head = _shared_head(tree, good, bad)
        pairs.append(
            PreferencePair(
                tree.prompt + head,
                good[len(head) :],
                bad[len(head) :],
                True,
                True,
                _meta(tree, rejected, chosen, fixed, "full"),
            )
        )
    return pairs


_ANNOTATION_RESULT = re.compile(r"<<[^<>=]*=([^<>]*)>>")
_FINAL = re.compile(r"####\s*(.*)")


def _line_value(line: str) -> str:
    """What a line computes: its annotation results, else its `#### N` answer, else its words."""
    results = _ANNOTATION_RESULT.findall(line)
    if results:
        return ";".join(r.replace(",", "").strip() for r in results)
    final = _FINAL.search(line)
    if final:
        return final.group(1).replace(",", "").strip()
    return " ".join(line.split())


def first_wrong_line(
    task: Task, wrong: list[str], right: list[str], step_verifier: StepVerifier | None
) -> int | None:
    """Index of the first line of `wrong` the step verifier proves false or whose value differs from the
    same line of `right`; None when every line agrees (then the wrong solution is a prefix of the right)."""
    for i, line in enumerate(wrong):
        if step_verifier is not None and step_verifier.check_prefix(task, line) is not None:
            return i
        if i >= len(right) or _line_value(line) != _line_value(right[i]):
            return i
    return None


def step_pairs(tree: RefinementTree, verifier: Verifier, *, max_pairs: int) -> list[PreferencePair]:
    """Pairs inside the shared thinking and the correct answer lines, one per wrong round at most.

    The prompt ends where the wrong round's first wrong line starts; the rejected side is the rest of the
    wrong round, the chosen side the rest of a verified-correct round with the same thinking, and the chosen
    solution as the prompt continues it (shared lines + chosen lines) is verified again before it is kept.
    """
    step_verifier = verifier if isinstance(verifier, StepVerifier) else None
    pairs: list[PreferencePair] = []
    # every correct round is a candidate for each wrong round, the preferred one first
    correct = [r for r in tree.rounds if r.outcome is True]
    for rejected, preferred, fixed in _ordered_candidates(tree):
        if len(pairs) >= max_pairs:
            break
        thinking = " ".join((rejected.parse.thinking or "").split())
        others = [c for c in correct if c is not preferred]
        for chosen in [preferred, *others]:
            if " ".join((chosen.parse.thinking or "").split()) != thinking:
                continue
            pair = _step_pair(tree, verifier, step_verifier, rejected, chosen, fixed and chosen is preferred)
            if pair is not None:
                pairs.append(pair)
                break
    return pairs


def _step_pair(
    tree: RefinementTree,
    verifier: Verifier,
    step_verifier: StepVerifier | None,
    rejected: Round,
    chosen: Round,
    fixed: bool,
) -> PreferencePair | None:
    bad_text, good_text = rejected.solution, chosen.solution
    assert bad_text is not None and good_text is not None
    bad_answer, good_answer = rejected.parse.answer, chosen.parse.answer
    if not bad_text.endswith(bad_answer):  # format_thinking puts the answer last (the contract's layout)
        return None
    bad_lines, good_lines = bad_answer.split("\n"), good_answer.split("\n")
    j = first_wrong_line(tree.task, bad_lines, good_lines, step_verifier)
    if j is None or j >= len(good_lines):
        return None
    shared = bad_text[: len(bad_text) - len(bad_answer)] + "".join(line + "\n" for line in bad_lines[:j])
    chosen_rest, rejected_rest = "\n".join(good_lines[j:]), "\n".join(bad_lines[j:])
    if chosen_rest.strip() == rejected_rest.strip() or not rejected_rest.strip():
        return None
    if not verifier.check(tree.task, shared + chosen_rest).correct:  # the chosen side, as spliced, verified
        return None
    meta = _meta(tree, rejected, chosen, fixed, "step") | {"line": j}
    return PreferencePair(tree.prompt + shared, chosen_rest, rejected_rest, True, True, meta)


# ---------------------------------------------------------------------------------------------------------
# the search


class PRefLexOR:
    """The recursive thinking search; `run` implements the Search protocol.

    `graph` is the knowledge graph to start from (the previous iteration's); without one the search builds
    it from the tasks (or loads `config.graph`). The graph is never mutated: a grown copy is returned.
    """

    name = "preflexor"
    artifact_names = ("knowledge_graph",)  # what `SearchResult.artifacts` holds; saved as <name>.json

    def __init__(self, config: PRefLexORConfig | None = None, *, graph: KnowledgeGraph | None = None) -> None:
        self.config = config or PRefLexORConfig()
        self.graph = graph

    def with_artifacts(self, folder: str | Path) -> PRefLexOR:
        """This search, starting from the graph a previous run saved in `folder` (itself when none was)."""
        path = Path(folder) / GRAPH_FILE
        return PRefLexOR(self.config, graph=KnowledgeGraph.load(path)) if path.exists() else self

    def run(
        self,
        policy: Policy,
        verifier: Verifier,
        tasks: Sequence[Task],
        prompt_fn: Callable[[Task], str],
        *,
        seed: int,
        token_budget: int | None = None,
        progress: SearchProgress | None = None,
    ) -> SearchResult:
        config = self.config
        start = time.perf_counter()
        counter = Counter()
        given = self.graph
        if given is None and config.graph:
            given = KnowledgeGraph.load(config.graph)
        graph = copy.deepcopy(given) if given is not None else KnowledgeGraph.build(tasks)
        practice = self._practice(graph, seed)
        tasks = list(tasks) + practice
        trees: list[RefinementTree] = []
        for wave_start in range(0, len(tasks), config.trees_per_batch):
            if token_budget is not None and counter.tokens >= token_budget:
                break
            wave = []
            for task in tasks[wave_start : wave_start + config.trees_per_batch]:
                # from the graph as grown so far: later waves may retrieve earlier waves' verified solutions
                retrieval = (
                    graph.retrieve(task.question, examples=config.retrieval_examples, exclude=(task.id,))
                    if config.retrieval
                    else None
                )
                prefix = retrieval.thinking_prefix() if retrieval is not None else ""
                # a recipe whose prompt already opens the thinking (arith-thinking) gets the tag once: it
                # moves into the head, so every round's text starts with it, as the parser and pairs expect
                prompt, opener = prompt_fn(task), THINKING_OPEN + "\n"
                prompt = prompt.removesuffix(opener)
                wave.append(RefinementTree(task, prompt, opener + prefix, retrieval))
            generate_rounds(policy, wave, config, verifier=verifier, seed=seed + wave_start, counter=counter)
            for tree in wave:
                for r in tree.rounds:
                    if r.well_formed and r.outcome is not None:
                        graph.add_solution(tree.task, r.parse.answer, correct=r.outcome)
            trees.extend(wave)
            if progress is not None:
                progress(len(trees), len(tasks), _stats(trees, counter, time.perf_counter() - start))
        pairs = []
        for tree in trees:
            if "full" in config.pair_kinds:
                pairs += full_pairs(tree, max_pairs=config.max_pairs_per_task)
            if "step" in config.pair_kinds:
                pairs += step_pairs(tree, verifier, max_pairs=config.max_pairs_per_task)
        stats = _stats(trees, counter, time.perf_counter() - start) | {
            "search/pairs": len(pairs),
            "search/pairs_full": sum(p.metadata["kind"] == "full" for p in pairs),
            "search/pairs_step": sum(p.metadata["kind"] == "step" for p in pairs),
            "search/pairs_fixed": sum(bool(p.metadata["fixed"]) for p in pairs),
            "search/practice_questions": len(practice),
        }
        return SearchResult(
            trees=[tree.to_dict(self.name) for tree in trees],
            pairs=pairs,
            samples=[s for tree in trees for s in tree_samples(tree)],
            stats=stats,
            artifacts={"knowledge_graph": graph},
        )

    def _practice(self, graph: KnowledgeGraph, seed: int) -> list[Task]:
        """Practice questions composed from the graph; only those whose answers were computed exactly."""
        if not self.config.practice_questions:
            return []
        questions = graph.practice_questions(self.config.practice_questions, seed=seed)
        verified = [t for t in questions if t.metadata.get("verified") is True]
        logger.info("practice questions: %d composed, %d verified", len(questions), len(verified))
        return verified


def tree_samples(tree: RefinementTree) -> list[Sample]:
    """Every verified round as a complete solution after the question prompt (thinking + answer, no
    reflection, so RFT learns to think and answer from the plain question), deduplicated by text."""
    seen: set[str] = set()
    samples = []
    for r in tree.rounds:
        if r.outcome is None:
            continue
        text = r.solution if r.solution is not None else r.text[max(0, r.text.find(THINKING_OPEN)) :]
        if text not in seen:
            seen.add(text)
            samples.append(Sample(tree.task.id, tree.prompt, text, r.outcome, r.num_tokens))
    return samples


def _stats(trees: Sequence[RefinementTree], counter: Counter, seconds: float) -> dict[str, float]:
    """The keys of accounting.search_stats, plus what refinement adds (rates over all rounds)."""
    rounds = [r for t in trees for r in t.rounds]
    refinements = [(t, r) for t in trees for r in t.rounds if r.round > 0]
    after_wrong = [r for t, r in refinements if _parent(t, r).outcome is False]
    after_right = [r for t, r in refinements if _parent(t, r).outcome is True]
    nodes = len(rounds) + len(trees)
    stats: dict[str, float] = {
        "search/trees": len(trees),
        "search/nodes": nodes,
        "search/solved": sum(any(r.outcome is True for r in t.rounds) for t in trees),
        "search/tokens": counter.tokens,
        "search/generate_calls": counter.generate_calls,
        "search/seconds": seconds,
        "search/tokens_per_s": counter.tokens / seconds if seconds else 0.0,
        "search/nodes_per_s": nodes / seconds if seconds else 0.0,
        "search/rounds": len(rounds),
        "search/malformed_rate": sum(not r.well_formed for r in rounds) / len(rounds) if rounds else 0.0,
        "search/refinements": len(refinements),
        # of the rounds that refined a wrong round, the fraction verified correct
        "search/fixed_rate": _rate(after_wrong, True),
        # of the rounds that refined a correct round (early_stop = false), the fraction no longer correct
        "search/broken_rate": _rate(after_right, False),
    }
    for index in sorted({r.round for r in rounds}):
        at = [r for r in rounds if r.round == index]
        stats[f"search/round{index}_correct_rate"] = _rate(at, True)
    return stats


def _rate(rounds: Sequence[Round], outcome: bool) -> float:
    return sum(r.outcome is outcome for r in rounds) / len(rounds) if rounds else 0.0
