"""`selfimprove serve`: an OpenAI-compatible completions server over a local model (FastAPI + uvicorn).

    selfimprove serve --model PATH [--host 127.0.0.1] [--port 8000] [--name NAME]

Once the socket listens it prints one line, `selfimprove serve: http://HOST:PORT/v1 model NAME`, so a
script (or a test) that started it with `--port 0` learns the port the system chose.
"""

from __future__ import annotations

import argparse
import socket
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="a local model folder, or a tiny-model preset name")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default loopback only)")
    parser.add_argument("--port", type=int, default=8000, help="port; 0 lets the system choose a free one")
    parser.add_argument("--name", default=None, help="model name clients send (default: the folder name)")
    parser.add_argument("--device", default="auto", help="auto (cuda if available), cpu or cuda")
    parser.add_argument("--dtype", default="auto", help="auto (bf16 on GPU, fp32 on CPU), float32, bfloat16")
    parser.add_argument("--batch-size", type=int, default=None, help="rows per forward (default: fit memory)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--log-level", default="warning", help="uvicorn log level")


def main(args: argparse.Namespace) -> int:
    try:
        import fastapi  # noqa: F401
        import uvicorn
    except ImportError:
        print(
            "selfimprove serve: error: needs FastAPI and uvicorn: pip install 'selfimprove[serve]'",
            file=sys.stderr,
        )
        return 2
    import torch

    from selfimprove.policy.hf import HFPolicy
    from selfimprove.policy.tiny import PRESETS, build_tiny_model
    from selfimprove.serve.app import create_app

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    path = build_tiny_model(args.model) if args.model in PRESETS else Path(args.model)
    try:
        policy = HFPolicy.from_pretrained(
            path, device=args.device, dtype=args.dtype, batch_size=args.batch_size
        )
    except ValueError as err:
        print(f"selfimprove serve: error: {err}", file=sys.stderr)
        return 2
    name = args.name or Path(path).name

    # bind and listen first, so that the announced port accepts connections at once
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    sock.listen(128)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    print(f"selfimprove serve: http://{shown}:{port}/v1 model {name}", flush=True)

    server = uvicorn.Server(uvicorn.Config(create_app(policy, model_name=name), log_level=args.log_level))
    server.run(sockets=[sock])
    return 0
