"""The vLLM backend of the Policy protocol: one in-process `vllm.LLM` engine (GPU, the `vllm` extra).

One `generate` call sends every prompt to the engine at once, each with its `SamplingParams(n, stop,
seed, logprobs=0)`; the engine batches them continuously, and prefix caching (on) lets the k expansions
of a search node, and the siblings of a tree, share their prompt's KV cache. Prompts go in as token ids
encoded by our tokenizer (special tokens included, as the transformers backend and the trainer encode
them), so all three agree on where a prompt ends. A Completion carries the engine's per-token log-probs
of the sampled tokens, summed; vLLM computes them from the raw logits (before temperature), as the
transformers backend does. `logprobs` scores given completions with `prompt_logprobs` on prompt +
completion ids.

New weights reach the engine after each training iteration in one of two ways, and `sync_weights`
returns a WeightSync record saying which (for the run folder):

- "reload": the engine reads the checkpoint's safetensors files and loads them into its model in place
  (`LLM.apply_model` + the model's `load_weights`), keeping its KV cache, CUDA graphs and compiled
  kernels: no second engine start.
- "in_place": the trainer's live tensors are handed to the same `load_weights`; with the engine in this
  process (`in_process=True`, the default: VLLM_ENABLE_V1_MULTIPROCESSING=0) and the trainer on the same
  GPU, nothing is written to disk and nothing leaves the device.

Either way the prefix cache is then reset: its KV blocks were computed by the old weights.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from selfimprove.policy.base import Completion

logger = logging.getLogger(__name__)

INSTALL_HINT = "vLLM is not installed: pip install 'selfimprove[vllm]' (it needs a CUDA GPU)"


def vllm_available() -> tuple[bool, str]:
    """(whether `import vllm` works, and why not if it does not)."""
    try:
        import vllm  # noqa: F401
    except Exception as err:  # vLLM can fail with more than ImportError (missing CUDA libraries)
        return False, f"{INSTALL_HINT} ({type(err).__name__}: {err})"
    return True, ""


@dataclass(frozen=True)
class WeightSync:
    """How new weights reached the engine: mode "reload" or "in_place", from where, and how long it took."""

    mode: str
    source: str
    tensors: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class VLLMPolicy:
    """A Policy over a vLLM engine; `.llm` (the engine) and `.tokenizer` are public."""

    def __init__(self, llm, tokenizer, *, model_path: str | Path, eos_ids: Iterable[int] = ()) -> None:
        """`eos_ids`: end tokens besides the tokenizer's (a generation config may list several)."""
        self.llm = llm
        self.tokenizer = tokenizer
        self.model_path = Path(model_path)
        self.eos_ids = frozenset(int(t) for t in (tokenizer.eos_token_id, *eos_ids) if t is not None)

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        *,
        dtype: str = "auto",
        gpu_memory_utilization: float = 0.5,
        seed: int = 0,
        in_process: bool = True,
        **engine_kwargs: Any,
    ) -> VLLMPolicy:
        """An engine over a local model folder, prefix caching on. `gpu_memory_utilization` is the share of
        the GPU for weights + KV cache (leave the rest to a trainer on the same GPU). `in_process` runs the
        engine core in this process (as TRL's colocated mode does): "in_place" weight updates then copy
        nothing between processes; without it the engine overlaps scheduling with the GPU a little
        better, and weight updates are pickled to its worker processes. Other keyword
        arguments go to `vllm.LLM` (e.g. max_model_len, enforce_eager, tensor_parallel_size)."""
        ok, reason = vllm_available()
        if not ok:
            raise ImportError(reason)
        from transformers import AutoTokenizer
        from vllm import LLM

        if not Path(path).is_dir():
            raise ValueError(f"model path {str(path)!r} is not a folder (expected a save_pretrained output)")
        # Both variables are read when the engine is created, and stay set for this process.
        if in_process:  # the engine core runs in this process: weight updates need no serialization
            os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
        else:  # sync_weights sends our own module-level functions to the local worker processes
            os.environ["VLLM_ALLOW_INSECURE_SERIALIZATION"] = "1"
        llm = LLM(
            model=str(path),
            dtype=dtype,
            gpu_memory_utilization=gpu_memory_utilization,
            enable_prefix_caching=True,
            seed=seed,
            **engine_kwargs,
        )
        return cls(
            llm, AutoTokenizer.from_pretrained(path), model_path=path, eos_ids=_generation_eos_ids(path)
        )

    # -----------------------------------------------------------------------------------------------------
    # generation

    def _prompt_ids(self, prompts: Sequence[str]) -> list[list[int]]:
        ids = self.tokenizer(list(prompts), add_special_tokens=True)["input_ids"] if prompts else []
        for i, row in enumerate(ids):
            if not row:
                raise ValueError(
                    f"prompt {i} ({prompts[i]!r}) encodes to no tokens and the tokenizer adds no BOS"
                )
        return ids

    def generate(
        self,
        prompts: Sequence[str],
        *,
        n: int = 1,
        max_new_tokens: int = 256,
        temperature: float = 1.0,
        top_p: float = 1.0,
        stop: Sequence[str] = (),
        seed: int | None = None,
    ) -> list[list[Completion]]:
        """For each prompt, `n` completions (temperature 0 is greedy)."""
        if isinstance(prompts, str):
            raise TypeError("prompts must be a sequence of strings, got a single string")
        if isinstance(stop, str):
            raise TypeError(f"stop must be a sequence of strings, got the string {stop!r}")
        if n < 1 or max_new_tokens < 0 or not temperature >= 0 or not 0 < top_p <= 1:
            raise ValueError(
                "need n >= 1, max_new_tokens >= 0, temperature >= 0, 0 < top_p <= 1; got "
                f"{n}, {max_new_tokens}, {temperature}, {top_p}"
            )
        if any(not isinstance(s, str) or not s for s in stop):
            raise ValueError(f"stop strings must be non-empty strings, got {list(stop)!r}")
        if max_new_tokens == 0 or not prompts:
            return [[Completion("", (), 0.0, "length") for _ in range(n)] for _ in prompts]
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        # one seed per prompt from the call's seed (vLLM gives the n samples of a request seed + i)
        rng = random.Random(seed) if seed is not None else None
        greedy = temperature == 0
        params = [
            SamplingParams(
                n=1 if greedy else n,  # greedy samples are identical: ask once, repeat
                temperature=temperature,
                top_p=top_p,
                max_tokens=max_new_tokens,
                stop=list(stop) or None,
                seed=rng.getrandbits(31) if rng is not None else None,
                logprobs=0,  # the sampled token's log-prob
                skip_special_tokens=False,  # decode as the transformers backend does
                spaces_between_special_tokens=False,
            )
            for _ in prompts
        ]
        requests = [TokensPrompt(prompt_token_ids=ids) for ids in self._prompt_ids(prompts)]
        outputs = self.llm.generate(requests, params, use_tqdm=False)
        results = []
        for output in outputs:
            samples = [self._completion(o) for o in sorted(output.outputs, key=lambda o: o.index)]
            results.append(samples * n if greedy else samples)
        return results

    def _completion(self, output) -> Completion:
        """vLLM's CompletionOutput as a Completion: the end token and its log-prob left out."""
        ids = list(output.token_ids)
        logprobs = [
            position[token].logprob for position, token in zip(output.logprobs or [], ids, strict=False)
        ]
        if output.finish_reason == "length":
            finish, stop = "length", None
        elif isinstance(output.stop_reason, str):
            finish, stop = "stop", output.stop_reason
        else:  # None: the end token; an int: a stop token id (the generation config's extra end tokens)
            finish, stop = "eos", None
        if finish == "eos" and ids and ids[-1] in self.eos_ids | ({output.stop_reason} - {None}):
            ids, logprobs = ids[:-1], logprobs[:-1]
        text = output.text
        eos_text = self.tokenizer.eos_token
        if finish == "eos" and eos_text and text.endswith(eos_text):
            text = text[: -len(eos_text)]
        return Completion(text, tuple(ids), math.fsum(logprobs), finish, stop)

    # -----------------------------------------------------------------------------------------------------
    # scoring

    def logprobs(self, prompts: Sequence[str], completions: Sequence[str]) -> list[float]:
        """Summed log-probability of each completion given its prompt (pairwise, same length)."""
        return [math.fsum(row) for row in self.token_logprobs(prompts, completions)]

    def token_logprobs(self, prompts: Sequence[str], completions: Sequence[str]) -> list[list[float]]:
        """Per-token log-probs of each completion after its prompt, from the engine's prompt log-probs."""
        if isinstance(prompts, str) or isinstance(completions, str):
            raise TypeError("prompts and completions must be sequences of strings, not a single string")
        if len(prompts) != len(completions):
            raise ValueError(f"got {len(prompts)} prompts but {len(completions)} completions; they pair up")
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        prompt_ids = self._prompt_ids(prompts)
        completion_ids = (
            self.tokenizer(list(completions), add_special_tokens=False)["input_ids"] if completions else []
        )
        rows = [i for i in range(len(prompts)) if completion_ids[i]]
        results: list[list[float]] = [[] for _ in prompts]
        if not rows:
            return results
        params = SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0)
        requests = [
            TokensPrompt(prompt_token_ids=list(prompt_ids[i]) + list(completion_ids[i])) for i in rows
        ]
        for i, output in zip(rows, self.llm.generate(requests, params, use_tqdm=False), strict=True):
            start = len(prompt_ids[i])
            sequence = list(prompt_ids[i]) + list(completion_ids[i])
            results[i] = [output.prompt_logprobs[j][sequence[j]].logprob for j in range(start, len(sequence))]
        return results

    # -----------------------------------------------------------------------------------------------------
    # new weights

    def sync_weights(self, source: str | Path | Any) -> WeightSync:
        """Load new weights into the engine: a checkpoint folder ("reload") or a live torch module
        ("in_place"); then reset the prefix cache."""
        start = time.perf_counter()
        if isinstance(source, str | Path):
            files = sorted(str(p) for p in Path(source).glob("*.safetensors"))
            if not files:
                raise ValueError(f"{source} holds no *.safetensors files to reload weights from")
            counts = self.llm.apply_model(functools.partial(_load_files, files))
            mode, where = "reload", str(source)
            self.model_path = Path(source)
        else:
            state = getattr(source, "state_dict", None)
            if not callable(state):
                raise TypeError(
                    f"source must be a checkpoint folder or a torch module, got {type(source).__name__}"
                )
            tensors = [(name, tensor.detach()) for name, tensor in state().items()]
            counts = self.llm.apply_model(functools.partial(_load_tensors, tensors))
            mode, where = "in_place", f"live {type(source).__name__}"
        self.llm.reset_prefix_cache()  # cached KV blocks hold the old weights' keys and values
        record = WeightSync(mode, where, int(counts[0]) if counts else 0, time.perf_counter() - start)
        logger.info("weights synced into vLLM: %s", record)
        return record


def _generation_eos_ids(path: str | Path) -> list[int]:
    """The end tokens a model's generation_config.json lists (vLLM stops on them too), if it has one."""
    import json

    config = Path(path) / "generation_config.json"
    if not config.is_file():
        return []
    value = json.loads(config.read_text(encoding="utf-8")).get("eos_token_id")
    return [int(v) for v in (value if isinstance(value, list) else [value]) if v is not None]


def _load_files(files: Sequence[str], model) -> int:
    """Runs inside a vLLM worker: stream the checkpoint's tensors into the engine's model."""
    from safetensors import safe_open

    def tensors() -> Iterable[tuple[str, Any]]:
        for file in files:
            with safe_open(file, framework="pt") as handle:
                for name in handle.keys():  # noqa: SIM118 (safe_open is not a mapping)
                    yield name, handle.get_tensor(name)

    return len(model.load_weights(tensors()) or ())


def _load_tensors(tensors: Sequence[tuple[str, Any]], model) -> int:
    """Runs inside a vLLM worker: hand the trainer's tensors to the engine's model."""
    return len(model.load_weights(iter(tensors)) or ())
