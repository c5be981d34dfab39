"""An OpenAI-compatible completions server over the transformers backend (FastAPI).

It speaks the subset of the OpenAI completions API that vLLM, SGLang and TGI also serve, so that the
HTTP client (policy/openai_client.py) can be tested on loopback against our own backend and then pointed
at any of them unchanged:

- `POST /v1/completions`: `prompt` (a string, a list of strings, or token ids for scoring), `n`,
  `max_tokens`, `temperature`, `top_p`, `stop`, `seed`, `logprobs` (0-5: the sampled token's log-prob,
  plus that many alternatives), `echo` (prepend the prompt and its token log-probs), and two vLLM
  extensions: `return_tokens_as_token_ids` (tokens as "token_id:N") and `stop_reason` in each choice
  (the stop string that ended it; null for the end token or the length limit).
- `GET /v1/models`, `GET /health`.

Generation is `HFPolicy.generate` with the request's seed, so a request answers exactly what the
in-process backend returns for the same call. The per-token log-probs of a choice come from one more
forward pass over prompt + generated tokens (the decode loop keeps only their sum), so they agree with the
in-process `Completion.logprob` to float tolerance, not bit for bit. Errors use OpenAI's shape,
`{"error": {"message", "type", "param", "code"}}`, with status 400 for bad requests and 404 for an
unknown model name. Requests run one at a time (a lock): the model and its caches are not thread-safe.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any

import torch
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from selfimprove.policy.hf import HFPolicy

logger = logging.getLogger(__name__)

MAX_TOP_LOGPROBS = 5  # OpenAI's limit on `logprobs`
# Logit entries (rows x positions x vocabulary) one scoring forward may hold: 2^25 fp32 = 128 MiB.
_SCORE_LOGITS_BUDGET = 1 << 25


class CompletionRequest(BaseModel):
    """The request body; unknown fields (user, suffix, ...) are ignored, as vLLM does."""

    model_config = ConfigDict(extra="ignore")

    model: str | None = None
    prompt: str | list[str] | list[int] | list[list[int]]
    n: int = Field(default=1, ge=1)
    max_tokens: int = Field(default=16, ge=0)
    temperature: float = Field(default=1.0, ge=0.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    stop: str | list[str] | None = None
    seed: int | None = None
    logprobs: int | None = Field(default=None, ge=0, le=MAX_TOP_LOGPROBS)
    echo: bool = False
    return_tokens_as_token_ids: bool = False


class _BadRequest(ValueError):
    def __init__(self, message: str, param: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.param = param
        self.status = status


def _error(status: int, message: str, param: str | None) -> JSONResponse:
    kind = "invalid_request_error" if status < 500 else "server_error"
    code = "model_not_found" if status == 404 else None
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return JSONResponse(status_code=status, content=body)


def create_app(policy: HFPolicy, *, model_name: str) -> FastAPI:
    """The FastAPI app serving `policy` under the name `model_name`."""
    app = FastAPI(title="selfimprove serve", description=__doc__.splitlines()[0])
    lock = threading.Lock()

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, err: RequestValidationError) -> JSONResponse:
        first = err.errors()[0] if err.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or None
        return _error(400, f"{where}: {first.get('msg', 'invalid request')}", where)

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [{"id": model_name, "object": "model", "created": 0, "owned_by": "selfimprove"}],
        }

    @app.post("/v1/completions")
    def completions(request: CompletionRequest) -> JSONResponse:
        if request.model is not None and request.model != model_name:
            return _error(
                404, f"The model `{request.model}` does not exist; this server has `{model_name}`.", "model"
            )
        try:
            with lock:
                body = _complete(policy, request, model_name)
        except _BadRequest as err:
            return _error(err.status, str(err), err.param)
        except (ValueError, TypeError) as err:
            return _error(400, str(err), None)
        return JSONResponse(body)

    return app


# ---------------------------------------------------------------------------------------------------------
# one request


def _complete(policy: HFPolicy, request: CompletionRequest, model_name: str) -> dict[str, Any]:
    prompts = _prompt_list(request.prompt)
    stop = [request.stop] if isinstance(request.stop, str) else list(request.stop or [])
    token_prompts = [p for p in prompts if not isinstance(p, str)]
    if token_prompts and request.max_tokens > 0:
        raise _BadRequest(
            "token-id prompts are served for scoring only (echo=true, max_tokens=0); send text to generate",
            "prompt",
        )
    if request.max_tokens == 0 and not request.echo:
        raise _BadRequest("max_tokens=0 generates nothing; set echo=true to score the prompt", "max_tokens")
    text_prompts = [p for p in prompts if isinstance(p, str)]
    encoded = iter(policy.encode_prompts(text_prompts))
    prompt_ids = [list(p) if not isinstance(p, str) else next(encoded) for p in prompts]
    vocab = policy.model.config.get_text_config().vocab_size
    for i, ids in enumerate(prompt_ids):
        if not ids or any(not 0 <= t < vocab for t in ids):
            raise _BadRequest(
                f"prompt {i}: token ids must be a non-empty list of ids in [0, {vocab})", "prompt"
            )

    # 1. generate (the in-process backend, same seed => same completions)
    if request.max_tokens > 0:
        groups = policy.generate(
            text_prompts,
            n=request.n,
            max_new_tokens=request.max_tokens,
            temperature=request.temperature,
            top_p=request.top_p,
            stop=stop,
            seed=request.seed,
        )
    else:
        groups = [[None] * request.n for _ in prompts]

    # 2. per-token log-probs: one scoring pass over prompt + generated tokens of every choice
    rows = [(p, c) for p in range(len(prompts)) for c in groups[p]]
    want_scores = request.logprobs is not None
    scored: list[tuple[list[float], list[list[tuple[int, float]]]]] = []
    if want_scores:
        sequences = [prompt_ids[p] + (list(c.token_ids) if c is not None else []) for p, c in rows]
        scored = score_tokens(policy, sequences, top=request.logprobs or 0)

    choices = []
    for index, (p, completion) in enumerate(rows):
        generated = list(completion.token_ids) if completion is not None else []
        text = completion.text if completion is not None else ""
        shown_ids = generated
        shown_text = text
        if request.echo:
            shown_ids = prompt_ids[p] + generated
            prompt_text = prompts[p] if isinstance(prompts[p], str) else _decode(policy, prompt_ids[p])
            shown_text = prompt_text + text
        choice: dict[str, Any] = {
            "index": index,
            "text": shown_text,
            "logprobs": None,
            # OpenAI's two reasons: "stop" for the end token and for a stop string, "length" otherwise
            # (also for scoring only, max_tokens 0)
            "finish_reason": "stop"
            if completion is not None and completion.finish_reason != "length"
            else "length",
            "stop_reason": completion.stop if completion is not None else None,
        }
        if want_scores:
            chosen, top = scored[index]
            first = 0 if request.echo else len(prompt_ids[p])
            # chosen[j] scores token j + 1 of the sequence; the sequence's first token has no log-prob
            token_logprobs: list[float | None] = [None, *chosen][first:]
            top_logprobs = [None, *top][first:]
            choice["logprobs"] = _logprobs_block(
                policy, shown_ids, token_logprobs, top_logprobs, request.return_tokens_as_token_ids
            )
        choices.append(choice)

    prompt_tokens = sum(len(ids) for ids in prompt_ids)
    completion_tokens = sum(c.num_tokens for _, c in rows if c is not None)
    return {
        "id": f"cmpl-{uuid.uuid4().hex}",
        "object": "text_completion",
        "created": int(time.time()),
        "model": model_name,
        "choices": choices,
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def _prompt_list(prompt: str | list[str] | list[int] | list[list[int]]) -> list[str | list[int]]:
    """OpenAI's four prompt forms as one list: a string, strings, one token-id list, token-id lists."""
    if isinstance(prompt, str):
        return [prompt]
    if not prompt:
        raise _BadRequest("prompt is an empty list", "prompt")
    if all(isinstance(p, int) for p in prompt):
        return [list(prompt)]
    return list(prompt)


def _logprobs_block(
    policy: HFPolicy,
    ids: Sequence[int],
    token_logprobs: Sequence[float | None],
    top_logprobs: Sequence[list[tuple[int, float]] | None],
    as_ids: bool,
) -> dict[str, Any]:
    """OpenAI's `logprobs` object; text offsets are cumulative lengths of the decoded token strings."""
    name = (lambda t: f"token_id:{t}") if as_ids else (lambda t: _decode(policy, [t]))
    tokens = [name(t) for t in ids]
    offsets, at = [], 0
    for token in tokens:
        offsets.append(at)
        at += len(token) if not as_ids else 0
    return {
        "tokens": tokens,
        "token_logprobs": list(token_logprobs),
        "top_logprobs": [
            None if alternatives is None else {name(t): lp for t, lp in alternatives}
            for alternatives in top_logprobs
        ]
        if any(top_logprobs)
        else None,
        "text_offset": offsets,
    }


@torch.inference_mode()
def score_tokens(
    policy: HFPolicy, sequences: Sequence[Sequence[int]], *, top: int = 0
) -> list[tuple[list[float], list[list[tuple[int, float]]]]]:
    """For each token sequence, log p(token_j | tokens_<j) for j >= 1, and the `top` most likely tokens
    (id, log-prob) at each of those positions; raw logits, no temperature.

    Rows are right-padded (a causal model's real tokens never see the padding after them) and batched so
    that one forward holds at most _SCORE_LOGITS_BUDGET logit entries.
    """
    model, device = policy.model, policy.device
    vocab = policy.model.config.get_text_config().vocab_size
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
    results: list[tuple[list[float], list[list[tuple[int, float]]]]] = [([], []) for _ in sequences]
    batches: list[list[int]] = [[]]
    for i in order:  # ascending lengths: a batch's last row is its widest
        if batches[-1] and (len(batches[-1]) + 1) * len(sequences[i]) * vocab > _SCORE_LOGITS_BUDGET:
            batches.append([])
        batches[-1].append(i)
    for batch in batches:
        width = max((len(sequences[i]) for i in batch), default=0)
        if width < 2:
            continue
        ids = torch.full((len(batch), width), policy.pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, i in enumerate(batch):
            ids[row, : len(sequences[i])] = torch.tensor(list(sequences[i]), dtype=torch.long)
            mask[row, : len(sequences[i])] = 1
        ids, mask = ids.to(device), mask.to(device)
        logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits[:, :-1]  # (B, W-1, V)
        logp = torch.log_softmax(logits.float(), dim=-1)
        chosen = logp.gather(-1, ids[:, 1:, None]).squeeze(-1).double().tolist()  # (B, W-1)
        if top:
            top_values, top_ids = logp.topk(top, dim=-1)  # (B, W-1, top)
            top_values, top_ids = top_values.double().tolist(), top_ids.tolist()
        for row, i in enumerate(batch):
            n = len(sequences[i]) - 1
            alternatives = (
                [list(zip(top_ids[row][j], top_values[row][j], strict=True)) for j in range(n)]
                if top
                else [[] for _ in range(n)]
            )
            results[i] = (chosen[row][:n], alternatives)
    return results


def _decode(policy: HFPolicy, ids: Sequence[int]) -> str:
    """Token ids as text, special tokens kept (as the backend decodes its completions)."""
    return policy.tokenizer.decode(list(ids), skip_special_tokens=False, clean_up_tokenization_spaces=False)
