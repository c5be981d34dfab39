"""`selfimprove serve` and the OpenAI-compatible client, over real HTTP on loopback.

The server runs as its own process, started by the CLI exactly as a user would start it; the client talks
to it through urllib. Retries and time-outs are checked against small stdlib HTTP servers on loopback that
fail on purpose (503, silence) in front of the real one.
"""

from __future__ import annotations

import http.server
import json
import math
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="selfimprove serve needs fastapi (pip install 'selfimprove[serve]')")
pytest.importorskip("uvicorn", reason="selfimprove serve needs uvicorn (pip install 'selfimprove[serve]')")

from selfimprove.policy.backends import PolicySpec, open_policy
from selfimprove.policy.base import Policy
from selfimprove.policy.hf import HFPolicy
from selfimprove.policy.openai_client import OpenAICompletionsPolicy, ServerError

PROMPTS = [
    "Question: Tom has 3 apples and buys 4 more. How many apples does he have?\nAnswer:\n",
    "He has 8+22=<<8+22=30>>30",
    "Q",
]


@pytest.fixture(scope="module")
def server(tiny_lm_path: Path) -> Iterator[str]:
    """`selfimprove serve --port 0` in a subprocess; yields its base URL (…/v1)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "selfimprove.cli", "serve", "--model", str(tiny_lm_path)]
    command += ["--port", "0", "--device", "cpu", "--threads", "1", "--name", "tiny"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = process.stdout.readline()
        if not line.startswith("selfimprove serve: http://"):
            process.kill()
            raise RuntimeError(f"server did not start: {line!r} {process.stderr.read()}")
        yield line.split()[2]
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def local(tiny_lm_path: Path) -> HFPolicy:
    return HFPolicy.from_pretrained(tiny_lm_path, device="cpu")


@pytest.fixture(scope="module")
def client(server: str, tiny_lm_path: Path) -> OpenAICompletionsPolicy:
    return OpenAICompletionsPolicy(server, "tiny", tokenizer=tiny_lm_path, timeout=60, max_retries=0)


def _same(remote, local) -> None:
    """Identical text, tokens, finish reason and stop string; log-probs within float tolerance."""
    assert len(remote) == len(local)
    for remote_group, local_group in zip(remote, local, strict=True):
        assert len(remote_group) == len(local_group)
        for r, c in zip(remote_group, local_group, strict=True):
            assert (r.text, r.token_ids, r.finish_reason, r.stop) == (
                c.text,
                c.token_ids,
                c.finish_reason,
                c.stop,
            )
            assert r.logprob == pytest.approx(c.logprob, rel=1e-4, abs=1e-4)


def test_greedy_completions_equal_the_in_process_backend(client, local) -> None:
    assert isinstance(client, Policy)
    kwargs = {"max_new_tokens": 24, "temperature": 0.0, "stop": ("\n", "####"), "seed": 0}
    remote, expected = client.generate(PROMPTS, **kwargs), local.generate(PROMPTS, **kwargs)
    _same(remote, expected)
    assert sum(c.num_tokens for group in remote for c in group) > 10
    assert all(c.logprob < 0 for group in remote for c in group if c.token_ids)


def test_seeded_samples_equal_the_in_process_backend(client, local) -> None:
    kwargs = {"n": 8, "max_new_tokens": 32, "temperature": 1.0, "stop": ("\n",), "seed": 3}
    remote = client.generate(PROMPTS, **kwargs)
    _same(remote, local.generate(PROMPTS, **kwargs))
    assert len({c.text for c in remote[0]}) > 1  # n samples of one prompt differ
    # this seed ends samples in all three ways: the end token, the stop string, the length limit
    assert {c.finish_reason for group in remote for c in group} == {"stop", "eos", "length"}
    nucleus = {"n": 3, "max_new_tokens": 16, "temperature": 0.7, "top_p": 0.9, "seed": 5}
    _same(client.generate(PROMPTS, **nucleus), local.generate(PROMPTS, **nucleus))


def test_scoring_equals_the_in_process_backend(client, local) -> None:
    completions = [" He has 7 apples.\n#### 7", "+1=31", " A"]
    remote = client.token_logprobs(PROMPTS, completions)
    expected = local.token_logprobs(PROMPTS, completions)
    assert (
        [len(r) for r in remote]
        == [len(e) for e in expected]
        == [len(local.encode_completions([c])[0]) for c in completions]
    )
    for r, e in zip(remote, expected, strict=True):
        assert r == pytest.approx(e, abs=1e-4)
    assert client.logprobs(PROMPTS, completions) == pytest.approx(
        local.logprobs(PROMPTS, completions), abs=1e-3
    )


def test_prompts_are_chunked_into_several_requests(server, tiny_lm_path, local) -> None:
    small = OpenAICompletionsPolicy(server, "tiny", tokenizer=tiny_lm_path, prompts_per_request=2)
    kwargs = {"max_new_tokens": 8, "temperature": 0.0}
    _same(small.generate(PROMPTS, **kwargs), local.generate(PROMPTS, **kwargs))


def test_openai_response_shape(server) -> None:
    body = {"model": "tiny", "prompt": "Q", "max_tokens": 4, "temperature": 0, "logprobs": 2, "echo": True}
    answer = _post_json(server + "/completions", body)
    choice = answer["choices"][0]
    assert answer["object"] == "text_completion" and answer["model"] == "tiny"
    assert choice["text"].startswith("Q") and choice["finish_reason"] in ("stop", "length")
    block = choice["logprobs"]
    assert len(block["tokens"]) == len(block["token_logprobs"]) == len(block["text_offset"])
    assert block["token_logprobs"][0] is None  # the prompt's first token has no context
    assert all(len(alternatives) == 2 for alternatives in block["top_logprobs"][1:])
    # the sampled (greedy) token is the most likely alternative
    last = block["top_logprobs"][-1]
    assert max(last.values()) == pytest.approx(block["token_logprobs"][-1], abs=1e-5)
    usage = answer["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    with urllib.request.urlopen(server + "/models") as response:
        assert json.load(response)["data"][0]["id"] == "tiny"


def test_bad_requests_raise_with_the_servers_message(server, client) -> None:
    with pytest.raises(ValueError, match=r"HTTP 400: n: Input should be greater than or equal to 1"):
        client._post("/completions", {"model": "tiny", "prompt": "Q", "n": 0})
    with pytest.raises(ValueError, match=r"HTTP 404: The model `other` does not exist"):
        OpenAICompletionsPolicy(server, "other", max_retries=0).generate(["Q"], max_new_tokens=2)
    with pytest.raises(ValueError, match="token-id prompts are served for scoring only"):
        client._post("/completions", {"prompt": [1, 2, 3], "max_tokens": 2})
    with pytest.raises(ValueError, match="scoring needs the model's tokenizer"):
        OpenAICompletionsPolicy(server, "tiny").logprobs(["Q"], ["A"])
    with pytest.raises(ValueError, match="base_url must start with http"):
        OpenAICompletionsPolicy("localhost:8000/v1", "tiny")


# ---------------------------------------------------------------------------------------------------------
# retries and time-outs, against loopback servers that misbehave on purpose


class _Front(http.server.BaseHTTPRequestHandler):
    """Answers the first `failures` POSTs with 503 (Retry-After: 0), or sleeps `delay` s; then forwards."""

    failures = 0
    delay = 0.0
    upstream = ""
    seen = 0
    authorization: str | None = None

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).seen += 1
        type(self).authorization = self.headers.get("Authorization")
        if type(self).seen <= type(self).failures:
            time.sleep(type(self).delay)
            if type(self).delay:
                return  # silence: the client's time-out fires first
            payload = json.dumps({"error": {"message": "overloaded"}}).encode()
            self.send_response(503)
            self.send_header("Retry-After", "0")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        request = urllib.request.Request(
            type(self).upstream + self.path[len("/v1") :],
            data=body,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request) as response:
            payload = response.read()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args) -> None:
        pass


def _front(upstream: str, *, failures: int, delay: float = 0.0):
    handler = type(
        "Front", (_Front,), {"failures": failures, "delay": delay, "upstream": upstream, "seen": 0}
    )
    front = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=front.serve_forever, daemon=True).start()
    return front, handler, f"http://127.0.0.1:{front.server_address[1]}/v1"


def test_retries_after_503_then_succeeds(server, tiny_lm_path, local) -> None:
    front, handler, url = _front(server, failures=2)
    try:
        flaky = OpenAICompletionsPolicy(url, "tiny", tokenizer=tiny_lm_path, max_retries=2, backoff=0.01)
        kwargs = {"max_new_tokens": 6, "temperature": 0.0}
        _same(flaky.generate(PROMPTS[:1], **kwargs), local.generate(PROMPTS[:1], **kwargs))
        assert handler.seen == 3
        handler.seen = 0
        with pytest.raises(ServerError, match="HTTP 503 on all 2 attempts; last: overloaded"):
            OpenAICompletionsPolicy(url, "tiny", max_retries=1, backoff=0.01).generate(
                ["Q"], max_new_tokens=2
            )
    finally:
        front.shutdown()


def test_a_silent_server_times_out_and_a_closed_port_fails_fast(server) -> None:
    front, handler, url = _front(server, failures=10, delay=1.0)
    try:
        started = time.perf_counter()
        with pytest.raises(ConnectionError, match=r"no answer after 2 attempts \(timeout 0.2 s\)"):
            OpenAICompletionsPolicy(url, "tiny", timeout=0.2, max_retries=1, backoff=0.0).generate(["Q"])
        assert time.perf_counter() - started < 0.9
        assert handler.seen == 2
    finally:
        front.shutdown()
    front.server_close()  # nothing listens there any more
    with pytest.raises(ConnectionError, match="no answer after 3 attempts"):
        OpenAICompletionsPolicy(url, "tiny", max_retries=2, backoff=0.01).generate(["Q"])


def test_policy_spec_opens_the_client_with_its_key(server, tiny_lm_path, local, monkeypatch) -> None:
    front, handler, url = _front(server, failures=0)
    try:
        monkeypatch.setenv("TEST_SERVE_KEY", "sk-local")
        spec = PolicySpec(
            backend="openai", url=url, model="tiny", path=str(tiny_lm_path), api_key_env="TEST_SERVE_KEY"
        )
        kwargs = {"max_new_tokens": 6, "temperature": 0.0}
        _same(open_policy(spec).generate(PROMPTS, **kwargs), local.generate(PROMPTS, **kwargs))
        assert handler.authorization == "Bearer sk-local"
    finally:
        front.shutdown()
    monkeypatch.delenv("TEST_SERVE_KEY")
    with pytest.raises(ValueError, match="TEST_SERVE_KEY', but that environment variable is unset"):
        open_policy(spec)
    with pytest.raises(ValueError, match="backend 'openai' needs url"):
        PolicySpec(backend="openai")
    with pytest.raises(
        ValueError, match=r"backend='tgi' is not allowed: choose from \['hf', 'vllm', 'openai'\]"
    ):
        PolicySpec(backend="tgi")
    with pytest.raises(ValueError, match="backend 'hf' needs path"):
        open_policy(PolicySpec())


def _post_json(url: str, body: dict) -> dict:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request) as response:
        return json.load(response)


def test_logprob_sum_is_finite(client) -> None:
    (completion,) = client.generate(["Q"], max_new_tokens=5, temperature=0.0)[0]
    assert math.isfinite(completion.logprob) and completion.num_tokens <= 5
