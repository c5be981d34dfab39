"""One round of training on one iteration's search output, scored on the arith *validation* split.

The loop's own evals use the held-out test split; choosing a learning rate, a loss or a data filter there
would tune on the held-out set. This probe trains a copy of a model on an iteration folder's pairs.jsonl
(`--method dpo`, any TrainConfig loss) or on its verified-correct samples.jsonl (`--method sft`, RFT), then
reports greedy accuracy on `--n` problems per step count of the val split, which no search or eval uses.

    python benchmarks/train_probe.py --model M --baseline
    python benchmarks/train_probe.py --model M --data RUN/iter_001 --method sft \
        --train '{"lr": 1e-4, "epochs": 2}'
    python benchmarks/train_probe.py --model M --data RUN/iter_001 --method dpo \
        --train '{"loss": "dpop", "lr": 1e-4, "epochs": 2}'
    python benchmarks/train_probe.py --model M --data RUN/iter_001 --method sft+dpo \
        --sft '{"lr": 1e-4, "epochs": 2}' --train '{"loss": "dpop", "lr": 1e-4, "epochs": 2}'

`--strict` drops samples and pairs whose chosen side has a false calculator annotation or plain equation
(for data written by an answer-only verifier); `--one-per-task` keeps one correct sample per problem.
Prints one JSON line.
"""

from __future__ import annotations

import argparse
import copy
import json
import time

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from selfimprove.eval.evaluate import evaluate
from selfimprove.policy.hf import HFPolicy
from selfimprove.records import read_pairs
from selfimprove.search.output import read_samples
from selfimprove.train.config import TrainConfig
from selfimprove.train.sft import train_sft
from selfimprove.train.trainer import train_preference
from selfimprove.verify.annotations import arithmetic_errors


def val_accuracy(
    model, tokenizer, *, n: int, steps: list[int], seed: int, max_new_tokens: int
) -> dict[str, float]:
    """Greedy accuracy per step count on the arith val split."""
    policy = HFPolicy(model, tokenizer)
    report = evaluate(
        policy, "arith", n=n, k=0, seed=seed, steps=steps, split="val", max_new_tokens=max_new_tokens
    )
    return {str(group.steps): group.greedy for group in report.by_steps}


def sft_examples(data: str, *, strict: bool, one_per_task: bool) -> list[tuple[str, str]]:
    seen_text, seen_task, examples = set(), set(), []
    for sample in read_samples(f"{data}/samples.jsonl"):
        if not sample.correct or (sample.prompt, sample.completion) in seen_text:
            continue
        if (strict and arithmetic_errors(sample.completion)) or (
            one_per_task and sample.task_id in seen_task
        ):
            continue
        seen_text.add((sample.prompt, sample.completion))
        seen_task.add(sample.task_id)
        examples.append((sample.prompt, sample.completion))
    return examples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", help="an iteration folder with pairs.jsonl / samples.jsonl")
    parser.add_argument("--method", choices=("sft", "dpo", "sft+dpo"), default="sft")
    parser.add_argument("--sft", default="{}", help="sft+dpo: the SFT stage's TrainConfig fields as JSON")
    parser.add_argument(
        "--reference",
        choices=("start", "sft"),
        default="start",
        help="sft+dpo: the preference stage's reference, the model before or after the SFT stage",
    )
    parser.add_argument("--train", default="{}", help="TrainConfig fields as JSON")
    parser.add_argument("--baseline", action="store_true", help="only score the model as it is")
    parser.add_argument("--strict", action="store_true")
    parser.add_argument("--one-per-task", action="store_true")
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--steps", default="3,4")
    parser.add_argument("--seed", type=int, default=123)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-new-tokens", type=int, default=256, help="512 for `tiny-work`")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    steps = [int(s) for s in args.steps.split(",")]
    model = AutoModelForCausalLM.from_pretrained(args.model)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    record: dict = {
        "model": args.model,
        "data": args.data,
        "method": args.method,
        "train": json.loads(args.train),
    }
    if not args.baseline:
        if not args.data:
            parser.error("--data is required unless --baseline")
        config = TrainConfig(**record["train"])
        start = time.perf_counter()
        reference = None
        if args.method in ("sft", "sft+dpo"):
            examples = sft_examples(args.data, strict=args.strict, one_per_task=args.one_per_task)
            if args.method == "sft+dpo":
                record["sft"] = json.loads(args.sft)
                if args.reference == "start":
                    reference = copy.deepcopy(model)
                result = train_sft(model, tokenizer, examples, TrainConfig(**record["sft"]))
            else:
                result = train_sft(model, tokenizer, examples, config)
            record["examples"] = len(examples)
        if args.method in ("dpo", "sft+dpo"):
            pairs = read_pairs(f"{args.data}/pairs.jsonl")
            if args.strict:
                pairs = [p for p in pairs if not arithmetic_errors(p.prompt.split("Answer:")[-1] + p.chosen)]
            result = train_preference(model, tokenizer, pairs, config, reference=reference)
            record["pairs"] = len(pairs)
            keys = ("logps/chosen", "logps/rejected", "rewards/margin")
            record["first_step"] = {k: result.metrics[0][k] for k in keys}
            record["last_step"] = {k: result.metrics[-1][k] for k in keys}
        record.update(steps_trained=result.steps, train_seconds=round(time.perf_counter() - start, 1))
    record["val_greedy"] = val_accuracy(
        model, tokenizer, n=args.n, steps=steps, seed=args.seed, max_new_tokens=args.max_new_tokens
    )
    print(json.dumps(record))


if __name__ == "__main__":
    main()
