"""Data-parallel training over processes (DDP semantics), launched by torchrun or accelerate launch.

Every process holds the whole model and plans the same steps (the data order comes from the seeded
generator, identical on all ranks). Rank r trains on rows r, r + W, r + 2W, ... of each optimizer step
(W processes), cut into micro-batches of `batch_size`; after the local backward passes the gradients are
summed over ranks with one all-reduce per bucket, then clipped and applied identically everywhere. A
micro-batch's loss is already divided by the normaliser of the whole step (pairs, or weighted tokens,
counted over all ranks' rows), so the summed gradient is exactly the single-process gradient of the same
global batch, and after N steps the weights agree to float tolerance (tests/test_ddp.py). Metric sums
are gathered the same way, so every rank logs the global step's metrics.

This is what torch's DistributedDataParallel computes; the all-reduce runs after backward instead of
overlapping it, because the trainers forward through the bare model (the shared-prompt path runs prompt
and completions as two forwards against one KV cache) and DDP's wrapper expects one forward per backward.
Only rank 0 writes the checkpoint. Every rank computes the reference log-probs of all pairs (they are
cheap next to training, and each rank then holds all it needs).

Launch (`python -m selfimprove.train.distributed --help`):

    torchrun --nproc-per-node 2 -m selfimprove.train.distributed --pairs pairs.jsonl --model PATH --out DIR
    accelerate launch --num_processes 2 -m selfimprove.train.distributed --pairs ... (the same arguments)
    torchrun --nproc-per-node 2 -m selfimprove.train.distributed --strategy fsdp --pairs ... (sharded)

CPU processes talk over gloo, GPU processes over NCCL, each on its own GPU (LOCAL_RANK). `--strategy fsdp`
shards the model over the ranks instead (fsdp.py): the same steps and weights, less memory per rank.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.distributed as dist

if TYPE_CHECKING:
    from selfimprove.train.fsdp import ShardedDataParallel

logger = logging.getLogger(__name__)


# Gradient elements per all-reduce: large enough to amortise a collective's latency, small enough that the
# flat copy does not double a large model's gradient memory (DDP's default bucket is 25 MiB).
BUCKET_ELEMENTS = 1 << 23


@dataclass(frozen=True)
class DataParallel:
    """This process's place in a data-parallel group: rank in 0..world_size-1."""

    rank: int
    world_size: int

    def __post_init__(self) -> None:
        if not 0 <= self.rank < self.world_size:
            raise ValueError(
                f"need 0 <= rank < world_size, got rank {self.rank}, world_size {self.world_size}"
            )

    def shard(self, micro_batches: Sequence[Sequence[int]], batch_size: int) -> list[list[int]]:
        """This rank's micro-batches of one optimizer step (possibly none, when the step is short)."""
        step = [i for micro in micro_batches for i in micro]
        mine = step[self.rank :: self.world_size]
        return [mine[k : k + batch_size] for k in range(0, len(mine), batch_size)]

    def broadcast_parameters(self, model: torch.nn.Module) -> None:
        """Start every rank from rank 0's weights (as DDP does at construction)."""
        for tensor in [*model.parameters(), *model.buffers()]:
            dist.broadcast(tensor.data, src=0)

    def begin_step(self) -> None:
        """Nothing to prepare before a step's micro-batches: every rank holds the whole model."""

    def all_reduce_gradients(self, params: Sequence[torch.nn.Parameter]) -> None:
        """Sum every parameter's gradient over ranks, in flat buckets; a rank that saw no rows adds zeros.

        A parameter that got no gradient on any rank keeps none, so the optimizer skips it exactly as a
        single process would (a zero gradient would still receive weight decay).
        """
        device = params[0].device if params else torch.device("cpu")
        has_grad = torch.tensor([p.grad is not None for p in params], dtype=torch.int32, device=device)
        dist.all_reduce(has_grad, op=dist.ReduceOp.SUM)
        used = [p for p, count in zip(params, has_grad.tolist(), strict=True) if count > 0]
        for param in used:
            if param.grad is None:
                param.grad = torch.zeros_like(param)
        bucket: list[torch.Tensor] = []
        size = 0
        for param in used:
            bucket.append(param.grad)
            size += param.grad.numel()
            if size >= BUCKET_ELEMENTS:
                _all_reduce_bucket(bucket)
                bucket, size = [], 0
        if bucket:
            _all_reduce_bucket(bucket)

    def sum_metrics(self, sums: dict[str, float]) -> dict[str, float]:
        """Metric numerators summed over ranks (keys may differ: a rank with no rows has none)."""
        gathered: list[dict[str, float] | None] = [None] * self.world_size
        dist.all_gather_object(gathered, sums)
        total: dict[str, float] = {}
        for part in gathered:
            for key, value in (part or {}).items():
                total[key] = total.get(key, 0.0) + value
        return total


def _all_reduce_bucket(grads: list[torch.Tensor]) -> None:
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def current_data_parallel() -> DataParallel | None:
    """The data-parallel group this process trains in: None unless torch.distributed is initialised with
    more than one process (a plain `python` run, or torchrun with one process, trains alone)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return None
    return DataParallel(rank=dist.get_rank(), world_size=dist.get_world_size())


def data_parallel(model: torch.nn.Module) -> DataParallel | ShardedDataParallel | None:
    """How `model` trains over processes: sharded (fsdp.py) when `shard_model` has sharded it, otherwise
    as `current_data_parallel()` says (DDP semantics with several processes, None alone)."""
    from torch.distributed.fsdp import FSDPModule

    if isinstance(model, FSDPModule):
        from selfimprove.train.fsdp import ShardedDataParallel

        return ShardedDataParallel(
            DataParallel(rank=dist.get_rank(), world_size=dist.get_world_size()), model
        )
    return current_data_parallel()


def init_from_environment(device: str = "auto") -> DataParallel | None:
    """Join the process group that torchrun / accelerate launch describe in the environment (RANK,
    WORLD_SIZE, MASTER_ADDR, MASTER_PORT, LOCAL_RANK): NCCL with one GPU per process when CUDA is used,
    gloo on CPU. Without those variables this is a single-process run and nothing is initialised."""
    if "RANK" not in os.environ or int(os.environ.get("WORLD_SIZE", "1")) == 1:
        return None
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if use_cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return current_data_parallel()


# ---------------------------------------------------------------------------------------------------------
# the launcher


def _arguments() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m selfimprove.train.distributed",
        description="Data-parallel preference training or SFT; run it under torchrun or accelerate launch.",
    )
    data = parser.add_mutually_exclusive_group(required=True)
    data.add_argument("--pairs", type=Path, help="pairs.jsonl: preference training (the DPO family)")
    data.add_argument(
        "--examples", type=Path, help="JSONL of {prompt, completion} (or a search's samples.jsonl): SFT"
    )
    parser.add_argument("--model", required=True, type=Path, help="model folder (save_pretrained format)")
    parser.add_argument(
        "--out", required=True, type=Path, help="folder for the trained model (rank 0 writes)"
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="TOML of TrainConfig (or SFTConfig) fields; default: defaults",
    )
    parser.add_argument("--ref", type=Path, default=None, help="fixed reference model (default: --model)")
    parser.add_argument(
        "--strategy",
        choices=("ddp", "fsdp"),
        default="ddp",
        help="ddp: every rank holds the whole model; fsdp: parameters, gradients and AdamW state sharded "
        "over ranks (FSDP2), for models that do not fit one device (default: ddp)",
    )
    return parser


def _read_examples(path: Path) -> list[tuple[str, str]]:
    """(prompt, completion) rows; a search's samples.jsonl contributes its verified-correct samples."""
    from selfimprove.io import read_jsonl

    examples = []
    for lineno, row in read_jsonl(path):
        if "prompt" not in row or "completion" not in row:
            raise ValueError(
                f"{path}:{lineno}: a row needs 'prompt' and 'completion', got keys {sorted(row)}"
            )
        if row.get("correct", True):
            examples.append((str(row["prompt"]), str(row["completion"])))
    return examples


def main(argv: list[str] | None = None) -> int:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from selfimprove.config import read_toml
    from selfimprove.io import atomic_write_json
    from selfimprove.records import read_pairs
    from selfimprove.train.config import SFTConfig, TrainConfig
    from selfimprove.train.sft import train_sft
    from selfimprove.train.trainer import train_preference

    args = _arguments().parse_args(argv)
    config_cls = TrainConfig if args.pairs is not None else SFTConfig
    data = args.pairs if args.pairs is not None else args.examples
    try:
        config = config_cls.from_dict(read_toml(args.config) if args.config else {})
        if not data.is_file():
            raise ValueError(f"{data}: no such file")
        for path, what in ((args.model, "--model"), (args.ref, "--ref")):
            if path is not None and not (path / "config.json").is_file():
                raise ValueError(f"{what} {path} is not a model folder (no config.json)")
        rows = read_pairs(data) if args.pairs is not None else _read_examples(data)
        if not rows:
            raise ValueError(f"{data}: nothing to train on")
        if args.strategy == "fsdp" and config.lora:
            raise ValueError("--strategy fsdp trains every parameter; with lora = true use --strategy ddp")
    except (ValueError, TypeError, FileNotFoundError) as err:
        print(f"selfimprove.train.distributed: error: {err}", file=sys.stderr)
        return 2
    parallel = init_from_environment(config.device)
    rank, world = (parallel.rank, parallel.world_size) if parallel else (0, 1)
    sharded = args.strategy == "fsdp" and parallel is not None
    try:
        model = AutoModelForCausalLM.from_pretrained(args.model)
        tokenizer = AutoTokenizer.from_pretrained(args.model)
        if sharded:
            from selfimprove.train.engine import resolve_device
            from selfimprove.train.fsdp import save_full_checkpoint, shard_model

            model = shard_model(model.to(resolve_device(config)[0]))
        # a sharded model is saved below, gathered; otherwise rank 0's trainer saves its whole model
        out = args.out if rank == 0 and not sharded else None
        if args.pairs is not None:
            result = train_preference(model, tokenizer, rows, config, out_dir=out, reference=args.ref)
        else:
            result = train_sft(model, tokenizer, rows, config, out_dir=out)
        if sharded:
            state = {
                "kind": "preference" if args.pairs is not None else "sft",
                "config": config.to_dict(),
                "strategy": "fsdp",
                "steps": result.steps,
                "tokens": result.tokens,
                "seconds": result.seconds,
                "final_metrics": result.final,
                "log_history": list(result.metrics),
            }
            save_full_checkpoint(model, tokenizer, args.out, state, base=args.model)
        if rank == 0:
            atomic_write_json(
                args.out / "distributed.json",
                {
                    "world_size": world,
                    "backend": dist.get_backend() if parallel else None,
                    "strategy": args.strategy if parallel else None,
                    "steps": result.steps,
                    "tokens": result.tokens,
                    "seconds": result.seconds,
                    "argv": sys.argv,
                },
            )
        logger.info("rank %d/%d: %d steps in %.1f s", rank, world, result.steps, result.seconds)
        if parallel is not None:
            dist.barrier()
    finally:
        if parallel is not None:
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
