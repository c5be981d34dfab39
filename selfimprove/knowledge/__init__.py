"""The PRefLexOR knowledge graph: concepts, quantity roles, operations and their relations, with provenance.

graph.py holds the graph, extract.py reads concepts and relations from problems, retrieve.py answers a
question with its concepts and nearest solved examples, practice.py composes new verified questions,
curriculum.py weights tasks by the relations the policy fails on, and thinking_data.py writes the thinking
warm-start examples.
"""

from selfimprove.knowledge.curriculum import concept_failure_rates, curriculum_weights, failure_rate
from selfimprove.knowledge.extract import (
    Extraction,
    Quantity,
    Step,
    extract,
    extract_question,
    llm_extraction_prompt,
    parse_llm_extraction,
)
from selfimprove.knowledge.graph import EDGE_TYPES, NODE_TYPES, KnowledgeGraph
from selfimprove.knowledge.practice import practice_questions
from selfimprove.knowledge.retrieve import Retrieval, retrieve
from selfimprove.knowledge.thinking_data import (
    plant_slip,
    refined_thinking,
    thinking_examples,
    thinking_lines,
    thinking_solution,
)

__all__ = [
    "EDGE_TYPES",
    "NODE_TYPES",
    "Extraction",
    "KnowledgeGraph",
    "Quantity",
    "Retrieval",
    "Step",
    "concept_failure_rates",
    "curriculum_weights",
    "extract",
    "extract_question",
    "failure_rate",
    "llm_extraction_prompt",
    "parse_llm_extraction",
    "plant_slip",
    "practice_questions",
    "refined_thinking",
    "retrieve",
    "thinking_examples",
    "thinking_lines",
    "thinking_solution",
]
