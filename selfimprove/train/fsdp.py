"""Fully sharded data parallel (FSDP2, `torch.distributed.fsdp.fully_shard`) with the DDP semantics of
distributed.py: the same rows per rank, the same summed gradient, the same clipping and AdamW step, but
each rank keeps only 1/W of every parameter, of its gradient and of AdamW's two moments between steps.

The sharding is ZeRO stage 3 (Rajbhandari et al. 2020, https://arxiv.org/abs/1910.02054) as PyTorch FSDP
implements it (Zhao et al. 2023, https://arxiv.org/abs/2304.11277): every decoder layer (the model's
`_no_split_modules` classes) is one FSDP unit and the root (embeddings, final norm, head, tied or not)
another; a unit's parameters are DTensors sharded on dim 0, and the optimizer updates the local shards.

The collectives of all ranks must pair up one for one, yet how many forwards a rank runs in a step depends
on its data: the shared-prompt path runs two forwards per micro-batch (one when every completion of the
micro-batch is a single token), the plain path one, and a rank may get one micro-batch fewer than another,
or none. So FSDP's per-forward gathering is not used while training; a step runs on a fixed schedule:

1. `begin_step`: all-gather every unit's parameters, units in module order (the same on every rank);
2. the local micro-batches: forwards and backwards with no collective at all (gradient sync off, nothing
   resharded after backward), gradients accumulating on the gathered parameters;
3. `all_reduce_gradients`: one forward/backward of a single token with loss 0 * logits, identical on every
   rank, with gradient sync on: FSDP reduce-scatters (summing: divide factor 1) each unit's accumulated
   gradient into its shard and reshards the parameters;
4. the engine clips the global norm over the shards and AdamW updates each shard.

Memory per parameter: between steps 16/W bytes (fp32 shard, gradient, two moments); during a step the
gathered parameters and gradients (8 bytes) on top, against 16 bytes all the time for DDP. Gathering one
layer at a time in every forward (FSDP's default) would need every rank to run the same forwards, which the
trainers do not promise. The reference log-probs, computed once before training, run through the sharded
model with one layer gathered at a time (every rank scores the same batches, so their collectives match).

Every rank ends with the trained shards; `save_full_checkpoint` gathers them into a plain model on rank 0.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.distributed.fsdp import FSDPModule, fully_shard

from selfimprove.train.distributed import DataParallel

logger = logging.getLogger(__name__)


def shard_model(model: torch.nn.Module) -> FSDPModule:
    """Shard `model` in place over the initialised process group: one FSDP unit per decoder layer + the root.

    Every rank first takes rank 0's weights (each then keeps its own slice of the same tensors). Returns the
    model, now an FSDPModule whose parameters are DTensor shards.
    """
    if not (dist.is_available() and dist.is_initialized()):
        raise ValueError("shard_model needs an initialised torch.distributed process group (torchrun)")
    layer_classes = set(getattr(model, "_no_split_modules", None) or ())
    layers = [m for m in model.modules() if type(m).__name__ in layer_classes]
    if not layers:
        raise ValueError(
            f"{type(model).__name__} names no decoder-layer classes in _no_split_modules "
            f"({sorted(layer_classes)}); FSDP needs them to shard one layer per unit"
        )
    DataParallel(rank=dist.get_rank(), world_size=dist.get_world_size()).broadcast_parameters(model)
    device = next(model.parameters()).device
    from torch.distributed.device_mesh import init_device_mesh

    mesh = init_device_mesh(device.type, (dist.get_world_size(),))
    for layer in layers:
        fully_shard(layer, mesh=mesh, reshard_after_forward=True)
    fully_shard(model, mesh=mesh, reshard_after_forward=True)
    # FSDP takes the first module to run forward as its root: make that the whole model, now, on every rank
    with torch.no_grad():
        _one_token_forward(model)
    return model  # type: ignore[return-value]


@dataclass(frozen=True)
class ShardedDataParallel:
    """The engine's data-parallel hooks (as DataParallel's) for a model sharded by `shard_model`."""

    group: DataParallel
    model: FSDPModule

    def __post_init__(self) -> None:
        if not isinstance(self.model, FSDPModule):
            raise ValueError(f"model must be sharded with shard_model, got {type(self.model).__name__}")

    @property
    def units(self) -> list[FSDPModule]:
        """The FSDP units in module order (root first), the order every rank gathers them in."""
        return [m for m in self.model.modules() if isinstance(m, FSDPModule)]  # type: ignore[attr-defined]

    def shard(self, micro_batches: Sequence[Sequence[int]], batch_size: int) -> list[list[int]]:
        """This rank's micro-batches of one step: the same rows as under DDP."""
        return self.group.shard(micro_batches, batch_size)

    def broadcast_parameters(self, model: torch.nn.Module) -> None:
        """Prepare for training (called before the optimizer is built).

        Nothing to broadcast: the shards are one copy of rank 0's weights (shard_model). Parameters gathered
        by an earlier forward (the reference pass) are resharded so that the optimizer holds the shards, and
        from now on nothing is resharded after a forward (the step schedule of the module docstring).
        """
        if model is not self.model:
            raise ValueError("broadcast_parameters got another model than the one this group shards")
        for unit in self.units:
            unit.set_reshard_after_forward(False, recurse=False)
            # sum over ranks (each loss is already normalised by the whole step), as a plain SUM collective:
            # a divide factor alone becomes NCCL's PREMUL_SUM, which gloo lacks
            unit.set_gradient_divide_factor(1.0)
            unit.set_force_sum_reduction_for_comms(True)
            unit.reshard()

    def begin_step(self) -> None:
        """Gather every unit's parameters for the step's local micro-batches (a collective per unit)."""
        for unit in self.units:
            unit.unshard()
        self.model.set_requires_gradient_sync(False)
        self.model.set_reshard_after_backward(False)

    def all_reduce_gradients(self, params: Sequence[torch.nn.Parameter]) -> None:
        """Sum the step's gradients over ranks into each rank's shards, then reshard the parameters.

        A zero-weight one-token forward/backward, identical on every rank, makes FSDP reduce-scatter every
        unit once, whatever forwards each rank ran (a rank that saw no rows adds zeros). Every parameter of
        the forward gets a gradient then, zero where no row used it; a causal LM uses all of them in every
        forward (DataParallel leaves a parameter that no rank used without a gradient).
        """
        self.model.set_requires_gradient_sync(True)
        self.model.set_reshard_after_backward(True)
        with torch.enable_grad():
            logits = _one_token_forward(self.model)
            (logits.sum() * 0.0).backward()

    def sum_metrics(self, sums: dict[str, float]) -> dict[str, float]:
        return self.group.sum_metrics(sums)


def _one_token_forward(model) -> torch.Tensor:
    device = next(model.parameters()).device
    ids = torch.zeros((1, 1), dtype=torch.long, device=device)
    return model(input_ids=ids, use_cache=False).logits


def full_state_dict(model: FSDPModule) -> dict[str, torch.Tensor]:
    """The unsharded parameters and buffers, on CPU on rank 0 ({} on other ranks); every rank calls it.

    Keys are the model's own state_dict keys (FSDP2 adds no prefix), tied weights under each of their names.
    """
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return get_model_state_dict(model, options=options)  # type: ignore[arg-type]


def save_full_checkpoint(
    model: FSDPModule, tokenizer, out_dir: str | Path, state: dict[str, Any], *, base: str | Path
) -> Path | None:
    """Gather the trained shards and write them as a plain checkpoint on rank 0; every rank calls it.

    Rank 0 loads the model folder `base` (the one training started from: config, generation config), loads
    the gathered weights into it with strict key matching, and saves it with save_checkpoint. Returns the
    folder on rank 0, None elsewhere.
    """
    from transformers import AutoModelForCausalLM

    from selfimprove.train.checkpoint import save_checkpoint

    weights = full_state_dict(model)
    if dist.get_rank() != 0:
        return None
    plain = AutoModelForCausalLM.from_pretrained(base)
    expected = plain.state_dict()
    missing, unexpected = sorted(set(expected) - set(weights)), sorted(set(weights) - set(expected))
    if missing or unexpected:
        raise ValueError(
            f"gathered keys do not match {type(plain).__name__}'s: missing {missing}, unexpected {unexpected}"
        )
    plain.load_state_dict(weights, strict=True)
    # tied names share one tensor, loaded once per name: each name must end up holding its gathered value
    for name, tensor in plain.state_dict().items():
        if not torch.equal(tensor, weights[name].to(tensor.dtype)):
            raise ValueError(f"{name}: the saved model does not hold the gathered weights")
    return save_checkpoint(plain, tokenizer, out_dir, state)
