"""Container health probe: asks the sidecar's grpc.health.v1 service, with the bearer token.

Exit code 0 when the server reports SERVING, 1 otherwise. It reads the same configuration as
the server (HSAI_* env vars, optional --config); the token from --token-file, HSAI_TOKEN or
<data_dir>/token, never from the command line. With TLS on it trusts the server's own
certificate, and only that.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gpu_server.config import ConfigError, ServerConfig, load_config
from gpu_server.identity import TOKEN_FILE
from gpu_server.tls import certificate_file, server_name
from gpu_server.token_file import COMMAND_LINE_REFUSAL, TokenFileError, read_token_file

_ANY_ADDRESS = {"0.0.0.0", "::", "[::]", ""}  # noqa: S104 - we connect, not bind


def _token(token_file: Path | None, config: ServerConfig) -> str:
    """The token from the file given, else the configured one, else the server's own."""
    if token_file is not None:
        return read_token_file(token_file)
    if config.token is not None and config.token.get_secret_value():
        return config.token.get_secret_value()
    token_path = config.data_dir / TOKEN_FILE
    if not token_path.exists():
        raise TokenFileError(f"no token configured and no {token_path}")
    return read_token_file(token_path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gpu_server.healthcheck")
    parser.add_argument("--config", type=Path)
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    parser.add_argument("--token", nargs="?", const="", help=argparse.SUPPRESS)
    parser.add_argument("--token-file", type=Path)
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--timeout", type=float, default=5.0)
    args = parser.parse_args(argv)
    if args.token is not None:
        sys.stderr.write(f"unhealthy: {COMMAND_LINE_REFUSAL}\n")
        return 1
    try:
        config = load_config(
            args.config,
            overrides={"host": args.host, "port": args.port, "data_dir": args.data_dir},
        )
        token = _token(args.token_file, config)
    except (ConfigError, TokenFileError) as exc:
        sys.stderr.write(f"unhealthy: {exc}\n")
        return 1
    host = "127.0.0.1" if config.host in _ANY_ADDRESS else config.host
    target = f"[{host}]:{config.port}" if ":" in host else f"{host}:{config.port}"
    if config.tls.mode == "off":
        channel = grpc.insecure_channel(target)
    else:
        try:
            cert_pem = certificate_file(config).read_bytes()
            name = server_name(cert_pem)
        except (OSError, ValueError) as exc:
            sys.stderr.write(f"unhealthy: cannot read the TLS certificate: {exc}\n")
            return 1
        credentials = grpc.ssl_channel_credentials(root_certificates=cert_pem)
        channel = grpc.secure_channel(
            target, credentials, options=[("grpc.ssl_target_name_override", name)]
        )
    with channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            # types-grpcio-health-checking declares HealthStub without its methods.
            response: health_pb2.HealthCheckResponse = stub.Check(  # type: ignore[attr-defined]
                health_pb2.HealthCheckRequest(service=""),
                metadata=[("authorization", f"Bearer {token}")],
                timeout=args.timeout,
            )
        except grpc.RpcError as exc:
            sys.stderr.write(f"unhealthy: {exc.code().name}: {exc.details()}\n")
            return 1
    if response.status != health_pb2.HealthCheckResponse.SERVING:
        state = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
        sys.stderr.write(f"unhealthy: {state}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
