"""Command line: python -m gpu_server [--config FILE] [--host H] [--port P] [--token-file PATH]
[--models-dir D] [--data-dir D] [--ready-file PATH] [--insecure-plaintext]

The token never comes from the command line (every local user can read it there): from
--token-file, HSAI_TOKEN, or <data_dir>/token, which the server generates when none is given."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from pathlib import Path

from gpu_server.announce import Announcer, Listening
from gpu_server.config import ConfigError, ServerConfig, load_config
from gpu_server.files import atomic_write
from gpu_server.server import GRPCServer
from gpu_server.token_file import (
    COMMAND_LINE_REFUSAL,
    TokenFileError,
    read_token_file,
    readable_by_others,
)

_LOGGER = logging.getLogger("gpu_server")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m gpu_server", description="Home Security AI inference sidecar."
    )
    parser.add_argument("--config", type=Path, help="YAML configuration file")
    parser.add_argument("--host", help="address to listen on (default 0.0.0.0)")
    parser.add_argument("--port", type=int, help="port to listen on; 0 picks a free one")
    # Kept only to refuse it with a reason (see token_file.py).
    parser.add_argument("--token", nargs="?", const="", help=argparse.SUPPRESS)
    parser.add_argument(
        "--token-file", type=Path, help="file holding the bearer token clients must present"
    )
    parser.add_argument("--models-dir", type=Path, help="folder with YOLO weights")
    parser.add_argument("--data-dir", type=Path, help="folder for server_id, token and caches")
    parser.add_argument(
        "--ready-file",
        type=Path,
        help="write {host, port, server_id, tls_fingerprint} JSON here once listening",
    )
    parser.add_argument(
        "--insecure-plaintext",
        action="store_true",
        help="serve without TLS: the token and frames cross the network in clear text",
    )
    return parser.parse_args(argv)


def write_ready_file(path: Path, server: GRPCServer) -> None:
    """Write atomically so a watcher never reads a half-written file."""
    payload: dict[str, object] = {
        "host": server.config.host,
        "port": server.port,
        "server_id": server.server_id,
        "tls_fingerprint": server.tls_fingerprint,
    }
    if server.risk is not None:
        model = server.risk.status()
        payload["language_model"] = {
            "state": model.state.value,
            "model": model.model,
            "reason": model.reason,
            "authority": model.authority.value,
        }
    atomic_write(path, json.dumps(payload))


async def serve(config: ServerConfig, ready_file: Path | None) -> None:
    server = GRPCServer(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await server.start()
    announcer = Announcer(config.discovery)
    try:
        if ready_file is not None:
            write_ready_file(ready_file, server)
        await announcer.start(
            Listening(
                host=config.host,
                port=server.port,
                server_id=server.server_id,
                tls_fingerprint=server.tls_fingerprint,
                token=server.token,
            )
        )
        await stop.wait()
        _LOGGER.info("stopping (grace period %.1f s)", config.grace_period_s)
    finally:
        await announcer.stop()
        await server.stop()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.token is not None:
        print(f"gpu_server: {COMMAND_LINE_REFUSAL}", file=sys.stderr)
        return 2
    try:
        token = read_token_file(args.token_file) if args.token_file is not None else None
    except TokenFileError as exc:
        print(f"gpu_server: {exc}", file=sys.stderr)
        return 2
    if args.token_file is not None and readable_by_others(args.token_file):
        print(
            f"gpu_server: warning: other users can read the token file {args.token_file}; "
            f"make it private (chmod 600)",
            file=sys.stderr,
        )
    try:
        config = load_config(
            args.config,
            overrides={
                "host": args.host,
                "port": args.port,
                "token": token,
                "models_dir": args.models_dir,
                "data_dir": args.data_dir,
                "tls.mode": "off" if args.insecure_plaintext else None,
            },
        )
    except ConfigError as exc:
        print(f"gpu_server: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=config.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        asyncio.run(serve(config, args.ready_file))
    except OSError:
        _LOGGER.exception("the server could not start")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
