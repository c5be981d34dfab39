"""Step-level MCTS with lockstep batching, after MCTS-DPO (Xie et al., 2024, arXiv:2405.00451).

State = question + the steps so far; an action is one step (a line). One round, for many trees at once:

1. select   - from each tree's root, descend by PUCT (AlphaZero, Silver et al. 2017):
              Q(s,a) + c_puct * P(s,a) * sqrt(N(s)) / (1 + N(s,a)), with P the softmax over siblings of
              length-normalised log-probs. Virtual loss lets one tree give several leaves per round.
2. expand   - every selected leaf gets k sampled next steps from ONE batched generate call; duplicate
              steps (whitespace-normalised) merge.
3. evaluate - every new child (up to the simulation budget): a terminal gets the verifier's verdict
              (1 or 0); any other node gets r Monte Carlo rollouts to the end, all trees' rollouts in
              ONE more generate call, value = fraction verified correct, optionally blended with the
              policy's self-evaluation (which never sees the gold solution).
4. backup   - N += 1, W += v on the path; Q = W/N.

A simulation is one leaf evaluation: the root's N equals the simulations run, and every node's N equals
its own evaluations plus its children's N. Fixes over the reference code: the gold solution is never
shown to the policy nor injected as a candidate, priors are normalised across siblings, each simulation
visits each node on its path once, and the rejected side of a pair is the min-Q sibling, never random.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from selfimprove.policy.base import Completion, Policy
from selfimprove.search.accounting import Counter, search_stats
from selfimprove.search.base import SearchProgress, SearchResult
from selfimprove.search.pairs import PAIR_KINDS, tree_pairs
from selfimprove.search.tree import Node, Rollout, Tree, tree_samples, tree_stats
from selfimprove.tasks.task import Task
from selfimprove.verify.base import StepVerifier, Verifier

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MCTSConfig:
    simulations: int = 24  # leaf evaluations per problem (the root's N at the end)
    children: int = 4  # k: next steps sampled per expansion
    rollouts: int = 4  # r: Monte Carlo completions per evaluated non-terminal node
    c_puct: float = 1.0
    max_depth: int = 10  # steps; a node at this depth is terminal
    temperature: float = 1.0
    top_p: float = 1.0
    step_delimiter: str = "\n"
    answer_marker: str = "####"  # a step containing it ends the solution
    max_step_tokens: int = 64
    max_rollout_tokens: int = 256
    leaves_per_tree: int = 2  # selections per tree per lockstep round (virtual loss separates them)
    trees_per_batch: int = 32  # trees searched in lockstep; 1 = one tree at a time
    self_eval_weight: float = 0.0  # blend of the policy's self-evaluation into non-terminal values
    self_eval_template: str = "{prompt}{prefix}Is every step above correct? Answer:"
    margin: float = 0.3  # minimum Q_chosen - Q_rejected for a pair
    pair_kinds: tuple[str, ...] = ("step",)
    max_full_pairs: int = 2  # full-solution pairs per task, when "full" is among pair_kinds

    def __post_init__(self) -> None:
        for name in ("simulations", "children", "max_depth", "max_step_tokens", "max_rollout_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"mcts.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("leaves_per_tree", "trees_per_batch"):
            if getattr(self, name) < 1:
                raise ValueError(f"mcts.{name} must be >= 1, got {getattr(self, name)}")
        if self.rollouts < 0:
            raise ValueError(f"mcts.rollouts must be >= 0, got {self.rollouts}")
        if not 0.0 <= self.self_eval_weight <= 1.0:
            raise ValueError(f"mcts.self_eval_weight must be in [0, 1], got {self.self_eval_weight}")
        if self.rollouts == 0 and self.self_eval_weight < 1.0:
            raise ValueError(
                "mcts.rollouts = 0 needs self_eval_weight = 1 (non-terminal nodes need some value)"
            )
        if not 0.0 <= self.margin <= 1.0:
            raise ValueError(f"mcts.margin must be in [0, 1], got {self.margin}")
        if self.c_puct < 0 or self.temperature < 0 or not 0 < self.top_p <= 1:
            raise ValueError(
                "need c_puct >= 0, temperature >= 0, 0 < top_p <= 1; "
                f"got {self.c_puct}, {self.temperature}, {self.top_p}"
            )
        unknown = [k for k in self.pair_kinds if k not in PAIR_KINDS]
        if unknown:
            raise ValueError(f"mcts.pair_kinds: unknown {unknown}; choose from {list(PAIR_KINDS)}")
        if not self.step_delimiter:
            raise ValueError("mcts.step_delimiter must not be empty")


# ---------------------------------------------------------------------------------------------------------
# the four phases


def puct(child: Node, parent: Node, c_puct: float, first_play: float) -> float:
    """AlphaZero's PUCT (Silver et al. 2017); virtual loss counts as visits of value 0."""
    n_parent = parent.visits + parent.virtual_loss
    n_child = child.visits + child.virtual_loss
    q = child.value_sum / n_child if n_child else first_play
    return q + c_puct * child.prior * math.sqrt(n_parent) / (1 + n_child)


def select(tree: Tree, c_puct: float) -> Node | None:
    """Descend by PUCT to the node to work on next; None when that node is already pending this round.

    The walk stops at an unevaluated child (to evaluate), an evaluated unexpanded node (to expand) or a
    terminal (to revisit). Unvisited children take their parent's Q as first-play value.
    """
    node = tree.root
    while node.expanded and node.children:
        parent = node
        first_play = parent.q if parent.visits else 0.5
        node = max(
            (tree.nodes[c] for c in parent.children),
            key=lambda c: (puct(c, parent, c_puct, first_play), -c.id),
        )
        if node.visits == 0:
            break
    if node.virtual_loss > 0 and not node.terminal:
        return None
    return node


def _apply_virtual_loss(tree: Tree, node: Node, amount: int) -> None:
    for n in tree.path(node):
        n.virtual_loss += amount


def _normalize(step: str) -> str:
    """Steps that differ only in inner or trailing whitespace merge; indentation (code) is kept."""
    indent = step[: len(step) - len(step.lstrip())]
    return indent + " ".join(step.split())


def expand(
    tree: Tree,
    leaf: Node,
    samples: Sequence[Completion],
    config: MCTSConfig,
    step_verifier: StepVerifier | None = None,
) -> list[Node]:
    """Add the distinct sampled steps as children of `leaf`, with sibling-normalised priors.

    With a `step_verifier`, a step it proves false (a wrong `<<a*b=c>>`) becomes a terminal worth 0 at once:
    no rollout tokens are spent on it, and its Q is exact rather than a noisy rollout estimate.
    """
    merged: dict[str, tuple[Completion, int]] = {}
    for sample in samples:
        key = _normalize(sample.text)
        first, count = merged.get(key, (sample, 0))
        merged[key] = (first, count + 1)
    # P = softmax over siblings of length-normalised log-probs
    scores = [c.logprob / max(1, c.num_tokens) for c, _ in merged.values()]
    top = max(scores)
    weights = [math.exp(s - top) for s in scores]
    total = sum(weights)
    leaf.expanded = True
    children = []
    for (completion, count), weight in zip(merged.values(), weights, strict=True):
        text = completion.text.rstrip(" \t\r")
        finished = config.answer_marker in text or completion.finish_reason == "eos"
        blank = not text.strip()
        child = tree.add_child(
            leaf,
            text=text,
            prior=weight / total,
            logprob=completion.logprob,
            num_tokens=completion.num_tokens,
            duplicates=count,
            finished=finished and not blank,
        )
        child.terminal = finished or blank or child.depth >= config.max_depth
        proven_false = step_verifier is not None and step_verifier.check_prefix(tree.task, text) is not None
        if proven_false and not blank:
            child.terminal, child.pruned, child.outcome = True, True, False
        children.append(child)
    return children


def evaluate_terminal(tree: Tree, node: Node, verifier: Verifier) -> float:
    """1 or 0 from the verifier; a solution cut off by max depth or a blank step counts as wrong."""
    if node.outcome is None:
        node.outcome = node.finished and verifier.check(tree.task, tree.solution(node)).correct
    return float(node.outcome)


def backup(tree: Tree, node: Node, value: float) -> None:
    node.evaluations += 1
    if node.value is None:
        node.value = value
    tree.backup(node, value)


# ---------------------------------------------------------------------------------------------------------
# lockstep driver


class MCTS:
    """The MCTS explorer; `run` implements the Search protocol."""

    name = "mcts"

    def __init__(self, config: MCTSConfig | None = None) -> None:
        self.config = config or MCTSConfig()

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
        trees: list[Tree] = []
        for wave_start in range(0, len(tasks), config.trees_per_batch):
            if token_budget is not None and counter.tokens >= token_budget:
                break
            wave = [
                Tree(task, prompt_fn(task), config.step_delimiter)
                for task in tasks[wave_start : wave_start + config.trees_per_batch]
            ]
            self._search_wave(policy, verifier, wave, seed=seed + wave_start, counter=counter)
            trees.extend(wave)
            if progress is not None:
                progress(len(trees), len(tasks), search_stats(trees, counter, time.perf_counter() - start))
        pairs = [
            pair
            for tree in trees
            for pair in tree_pairs(
                tree, margin=config.margin, kinds=config.pair_kinds, max_full_pairs=config.max_full_pairs
            )
        ]
        stats = search_stats(trees, counter, time.perf_counter() - start) | {"search/pairs": len(pairs)}
        return SearchResult(
            trees=[tree.to_dict(self.name, tree_stats(tree)) for tree in trees],
            pairs=pairs,
            samples=[s for tree in trees for s in tree_samples(tree)],
            stats=stats,
        )

    def _search_wave(
        self, policy: Policy, verifier: Verifier, trees: list[Tree], *, seed: int, counter: Counter
    ) -> None:
        config = self.config
        step_verifier = verifier if isinstance(verifier, StepVerifier) else None
        for round_index in range(10 * config.simulations + 10):  # a hard stop; budgets end it far sooner
            round_seed = seed * 100_003 + round_index
            to_expand: list[tuple[Tree, Node]] = []
            to_evaluate: list[tuple[Tree, Node]] = []
            for tree in trees:
                pending = 0
                for _ in range(config.leaves_per_tree):
                    if tree.root.visits + pending >= config.simulations:
                        break
                    node = select(tree, config.c_puct)
                    if node is None:
                        break
                    if node.terminal:
                        backup(tree, node, evaluate_terminal(tree, node, verifier))
                    elif node.visits == 0 and node is not tree.root:
                        to_evaluate.append((tree, node))
                        _apply_virtual_loss(tree, node, 1)
                        pending += 1
                    else:
                        to_expand.append((tree, node))
                        _apply_virtual_loss(tree, node, 1)
                        pending += config.children
            if not to_expand and not to_evaluate:
                if all(t.root.visits >= config.simulations for t in trees):
                    return
                continue
            # 2. expand: one generate call for every selected leaf of every tree
            if to_expand:
                samples = counter.generate(
                    policy,
                    [tree.prompt + tree.prefix(leaf) for tree, leaf in to_expand],
                    n=config.children,
                    max_new_tokens=config.max_step_tokens,
                    stop=(config.step_delimiter,),
                    temperature=config.temperature,
                    top_p=config.top_p,
                    seed=round_seed,
                )
                for (tree, leaf), leaf_samples in zip(to_expand, samples, strict=True):
                    budget = config.simulations - tree.root.visits - _pending_evaluations(to_evaluate, tree)
                    children = expand(tree, leaf, leaf_samples, config, step_verifier)
                    to_evaluate.extend((tree, child) for child in children[: max(0, budget)])
            for tree, node in to_expand:
                _apply_virtual_loss(tree, node, -1)
            # 3. evaluate: terminals by the verifier, the rest by rollouts in one more generate call
            self._evaluate(policy, verifier, to_evaluate, seed=round_seed + 50_021, counter=counter)
            for tree, node in to_evaluate:
                if node.virtual_loss:
                    _apply_virtual_loss(tree, node, -1)

    def _evaluate(
        self,
        policy: Policy,
        verifier: Verifier,
        nodes: list[tuple[Tree, Node]],
        *,
        seed: int,
        counter: Counter,
    ) -> None:
        config = self.config
        open_nodes = [(tree, node) for tree, node in nodes if not node.terminal]
        values: dict[tuple[int, int], float] = {}
        if open_nodes and config.rollouts:
            continuations = counter.generate(
                policy,
                [tree.prompt + tree.prefix(node) for tree, node in open_nodes],
                n=config.rollouts,
                max_new_tokens=config.max_rollout_tokens,
                stop=(),
                temperature=config.temperature,
                top_p=config.top_p,
                seed=seed,
            )
            for (tree, node), completions in zip(open_nodes, continuations, strict=True):
                for completion in completions:
                    finished = completion.finish_reason != "length"
                    full = tree.prefix(node) + completion.text
                    correct = finished and verifier.check(tree.task, full).correct
                    node.rollouts.append(Rollout(completion.text, correct, completion.num_tokens))
                values[(id(tree), node.id)] = sum(r.correct for r in node.rollouts) / len(node.rollouts)
        if open_nodes and config.self_eval_weight > 0:
            for (tree, node), p_correct in zip(
                open_nodes, self._self_evaluate(policy, open_nodes), strict=True
            ):
                key = (id(tree), node.id)
                rollout_value = values.get(key, 0.0)
                values[key] = (
                    1 - config.self_eval_weight
                ) * rollout_value + config.self_eval_weight * p_correct
        # 4. backup
        for tree, node in nodes:
            value = evaluate_terminal(tree, node, verifier) if node.terminal else values[(id(tree), node.id)]
            backup(tree, node, value)

    def _self_evaluate(self, policy: Policy, nodes: list[tuple[Tree, Node]]) -> list[float]:
        """P("Yes") vs P("No") after the question + partial solution; the gold solution is never shown."""
        prompts = [
            self.config.self_eval_template.format(prompt=tree.prompt, prefix=tree.prefix(node))
            for tree, node in nodes
        ]
        yes = policy.logprobs(prompts, [" Yes"] * len(prompts))
        no = policy.logprobs(prompts, [" No"] * len(prompts))
        return [1.0 / (1.0 + math.exp(n - y)) for y, n in zip(yes, no, strict=True)]


def _pending_evaluations(to_evaluate: list[tuple[Tree, Node]], tree: Tree) -> int:
    return sum(1 for t, _ in to_evaluate if t is tree)


# ---------------------------------------------------------------------------------------------------------
# results
