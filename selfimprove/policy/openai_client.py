"""The Policy protocol over HTTP: an OpenAI-compatible `/v1/completions` client (vLLM, SGLang, TGI, ours).

One `generate` call becomes one request per chunk of prompts (`prompt` a list, `n`, `max_tokens`,
`temperature`, `top_p`, `stop`, `seed`, `logprobs: 1`), answered with `len(prompts) * n` choices in order
(choice i belongs to prompt i // n). Per-token log-probs come back with every choice and their sum is the
Completion's log-prob. `logprobs` scores given completions with `echo: true, max_tokens: 0` on token-id
prompts, so that prompt and completion are split exactly as the trainer and the in-process backend split
them (prompt ids with special tokens, completion ids without); that needs the model's tokenizer here.

Two vLLM extensions fill what the OpenAI format leaves out: `return_tokens_as_token_ids` (tokens as
"token_id:N", so the Completion gets its token ids) and a choice's `stop_reason` (the stop string that
ended it; null for the end token). A server without the first needs `tokenizer=` (ids are re-encoded from
the text); a server without the second cannot tell the end token from a stop string, and such choices get
finish reason "stop" with `stop=None`.

The client uses only the standard library (urllib): the core package talks to any server without an
extra dependency, and a call carries many prompts, so per-request connection set-up is negligible.
Failures are retried with exponential back-off: connection errors, time-outs, HTTP 408, 409, 429 and 5xx
(honouring Retry-After); other 4xx answers are the caller's error and raise ValueError with the server's
message at once. Completions are deterministic given the seed, so a retried request is safe.
"""

from __future__ import annotations

import http.client
import json
import logging
import math
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from selfimprove.policy.base import Completion

logger = logging.getLogger(__name__)

RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
_TOKEN_ID_PREFIX = "token_id:"


class ServerError(RuntimeError):
    """The server kept failing (HTTP 5xx or 429) after every retry."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class OpenAICompletionsPolicy:
    """A Policy whose model runs behind an OpenAI-compatible completions server."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        tokenizer=None,
        api_key: str | None = None,
        timeout: float = 600.0,
        max_retries: int = 4,
        backoff: float = 0.5,
        prompts_per_request: int = 256,
    ) -> None:
        """`base_url` ends in /v1 (e.g. http://127.0.0.1:8000/v1). `tokenizer` is the model's tokenizer or
        its folder (needed by `logprobs`, and by `generate` when the server cannot send token ids).
        `timeout` is how long the server may stay silent (connecting or answering) before an attempt
        fails; `max_retries` more attempts follow, waiting backoff * 2**k seconds before attempt k + 1."""
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {base_url!r}")
        if not model:
            raise ValueError("model must name the served model (the server's /v1/models lists it)")
        if timeout <= 0 or max_retries < 0 or backoff < 0 or prompts_per_request < 1:
            raise ValueError(
                "need timeout > 0, max_retries >= 0, backoff >= 0, prompts_per_request >= 1; got "
                f"{timeout}, {max_retries}, {backoff}, {prompts_per_request}"
            )
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key = api_key
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.prompts_per_request = prompts_per_request
        if isinstance(tokenizer, str | Path):
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(tokenizer)
        self.tokenizer = tokenizer

    # -----------------------------------------------------------------------------------------------------
    # generation

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
        if n < 1 or max_new_tokens < 0:
            raise ValueError(
                f"need n >= 1 and max_new_tokens >= 0, got n={n}, max_new_tokens={max_new_tokens}"
            )
        if max_new_tokens == 0:
            return [[Completion("", (), 0.0, "length") for _ in range(n)] for _ in prompts]
        out: list[list[Completion]] = []
        for start in range(0, len(prompts), self.prompts_per_request):
            chunk = list(prompts[start : start + self.prompts_per_request])
            body: dict[str, Any] = {
                "model": self.model,
                "prompt": chunk,
                "n": n,
                "max_tokens": max_new_tokens,
                "temperature": temperature,
                "top_p": top_p,
                "logprobs": 1,  # 0 means "none" to some servers (vLLM echo); 1 also sends the top token
                "return_tokens_as_token_ids": True,
            }
            if stop:
                body["stop"] = list(stop)
            if seed is not None:
                body["seed"] = seed
            choices = self._choices(self._post("/completions", body), len(chunk) * n)
            completions = [self._completion(choice, bool(stop)) for choice in choices]
            out.extend(completions[i * n : (i + 1) * n] for i in range(len(chunk)))
        return out

    def _completion(self, choice: dict[str, Any], stop_requested: bool) -> Completion:
        text = choice.get("text")
        if not isinstance(text, str):
            raise ValueError(f"{self.base_url}: a choice has no text: {_short(choice)}")
        block = choice.get("logprobs") or {}
        token_logprobs = [lp for lp in block.get("token_logprobs") or [] if lp is not None]
        ids = self._token_ids(block.get("tokens") or [], text)
        reason = choice.get("finish_reason")
        stop = None
        if reason == "length":
            finish = "length"
        elif reason == "stop":
            stop_reason = choice.get("stop_reason")
            if isinstance(stop_reason, str):
                finish, stop = "stop", stop_reason
            elif "stop_reason" not in choice and stop_requested:  # the server does not say: see the docstring
                finish = "stop"
            else:  # null (end token) or an int (a stop token id)
                finish = "eos"
        else:
            raise ValueError(f"{self.base_url}: unknown finish_reason {reason!r} in {_short(choice)}")
        if finish == "eos" and ids and ids[-1] in self._eos_ids():
            # the Completion excludes the end token and its log-prob (as the in-process backends do)
            ids = ids[:-1]
            token_logprobs = token_logprobs[: len(ids)]
        return Completion(text, tuple(ids), math.fsum(token_logprobs), finish, stop)

    def _token_ids(self, tokens: Sequence[Any], text: str) -> list[int]:
        if tokens and all(isinstance(t, str) and t.startswith(_TOKEN_ID_PREFIX) for t in tokens):
            try:
                return [int(t[len(_TOKEN_ID_PREFIX) :]) for t in tokens]
            except ValueError:
                raise ValueError(f"{self.base_url}: malformed token ids {list(tokens)[:5]}...") from None
        if self.tokenizer is None:
            raise ValueError(
                f"{self.base_url} sent token strings, not ids: pass tokenizer= (the model's tokenizer "
                "folder) or use a server with return_tokens_as_token_ids (vLLM, selfimprove serve)"
            )
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _eos_ids(self) -> frozenset[int]:
        if self.tokenizer is None or self.tokenizer.eos_token_id is None:
            return frozenset()
        return frozenset({int(self.tokenizer.eos_token_id)})

    # -----------------------------------------------------------------------------------------------------
    # scoring

    def logprobs(self, prompts: Sequence[str], completions: Sequence[str]) -> list[float]:
        """Summed log-probability of each completion given its prompt (pairwise, same length)."""
        return [math.fsum(row) for row in self.token_logprobs(prompts, completions)]

    def token_logprobs(self, prompts: Sequence[str], completions: Sequence[str]) -> list[list[float]]:
        """Per-token log-probs of each completion given its prompt, scored by the server."""
        if isinstance(prompts, str) or isinstance(completions, str):
            raise TypeError("prompts and completions must be sequences of strings, not a single string")
        if len(prompts) != len(completions):
            raise ValueError(f"got {len(prompts)} prompts but {len(completions)} completions; they pair up")
        if self.tokenizer is None:
            raise ValueError(
                "scoring needs the model's tokenizer (tokenizer=), to split prompt and completion tokens "
                "exactly as the trainer does"
            )
        if not prompts:
            return []
        prompt_ids = self.tokenizer(list(prompts), add_special_tokens=True)["input_ids"]
        completion_ids = self.tokenizer(list(completions), add_special_tokens=False)["input_ids"]
        results: list[list[float]] = [[] for _ in prompts]
        rows = [i for i in range(len(prompts)) if completion_ids[i]]
        for start in range(0, len(rows), self.prompts_per_request):
            chunk = rows[start : start + self.prompts_per_request]
            body = {
                "model": self.model,
                "prompt": [list(prompt_ids[i]) + list(completion_ids[i]) for i in chunk],
                "max_tokens": 0,
                "echo": True,
                "logprobs": 1,  # 0 means "none" to some servers (vLLM echo); 1 also sends the top token
                "temperature": 0.0,
            }
            choices = self._choices(self._post("/completions", body), len(chunk))
            for i, choice in zip(chunk, choices, strict=True):
                scores = (choice.get("logprobs") or {}).get("token_logprobs") or []
                k = len(completion_ids[i])
                tail = scores[-k:] if len(scores) >= k else []
                if len(tail) != k or any(not isinstance(s, int | float) for s in tail):
                    raise ValueError(
                        f"{self.base_url}: expected {k} completion token log-probs for row {i}, got "
                        f"{_short(scores)}"
                    )
                results[i] = [float(s) for s in tail]
        return results

    # -----------------------------------------------------------------------------------------------------
    # HTTP

    def _choices(self, response: dict[str, Any], expected: int) -> list[dict[str, Any]]:
        choices = response.get("choices")
        if not isinstance(choices, list) or len(choices) != expected:
            got = len(choices) if isinstance(choices, list) else _short(choices)
            raise ValueError(f"{self.base_url}: expected {expected} choices, got {got}")
        try:
            return sorted(choices, key=lambda c: int(c["index"]))
        except (KeyError, TypeError, ValueError):
            raise ValueError(
                f"{self.base_url}: choices without an integer index: {_short(choices)}"
            ) from None

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST JSON and return the decoded answer, retrying what can succeed on a later attempt."""
        url = self.base_url + path
        data = json.dumps(body).encode("utf-8")
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        for attempt in range(self.max_retries + 1):
            wait = self.backoff * 2**attempt
            request = urllib.request.Request(url, data=data, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    payload = response.read()
            except urllib.error.HTTPError as err:
                message = _error_message(err.read())
                if err.code not in RETRY_STATUS:
                    raise ValueError(f"{url} answered HTTP {err.code}: {message}") from None
                if attempt == self.max_retries:
                    raise ServerError(
                        f"{url} answered HTTP {err.code} on all {attempt + 1} attempts; last: {message}",
                        err.code,
                    ) from None
                wait = _retry_after(err.headers.get("Retry-After"), wait)
                logger.warning(
                    "%s: HTTP %d (%s); retry %d in %.2f s", url, err.code, message, attempt + 1, wait
                )
            except (urllib.error.URLError, TimeoutError, ConnectionError, http.client.HTTPException) as err:
                if attempt == self.max_retries:
                    raise ConnectionError(
                        f"{url}: no answer after {attempt + 1} attempts (timeout {self.timeout} s): {err}"
                    ) from err
                logger.warning("%s: %s; retry %d in %.2f s", url, err, attempt + 1, wait)
            else:
                try:
                    answer = json.loads(payload)
                except json.JSONDecodeError:
                    raise ValueError(
                        f"{url} answered with something other than JSON: {payload[:200]!r}"
                    ) from None
                if not isinstance(answer, dict):
                    raise ValueError(f"{url} answered with JSON that is not an object: {_short(answer)}")
                return answer
            time.sleep(wait)
        raise AssertionError("unreachable: the last attempt returns or raises")


def _error_message(payload: bytes) -> str:
    """The `error.message` of an OpenAI-style error body, else the body's start."""
    try:
        error = json.loads(payload).get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(error, str):
            return error
    except (json.JSONDecodeError, AttributeError):
        pass
    return payload[:200].decode("utf-8", errors="replace")


def _retry_after(header: str | None, default: float) -> float:
    """Seconds from a Retry-After header (seconds form), capped at a minute; else the back-off."""
    try:
        return min(60.0, max(0.0, float(header))) if header is not None else default
    except ValueError:
        return default


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 200 else text[:200] + "..."
