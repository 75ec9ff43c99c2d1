"""The `netguard` command: serve, certs, and (later) check, audit.

Thin: parses arguments, calls the library, maps errors to exit codes (0 ok, 1 findings,
2 usage or input error). `serve` validates configuration and policies in this process first,
so a typo or a Rego error is reported with its file and line before gunicorn starts.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from webhook import certs, config
from webhook.engine import EngineError
from webhook.policies import PolicyLoadError

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="netguard", description="Network policy guardrails for Kubernetes")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the admission webhook (gunicorn, TLS)")
    serve.add_argument("--config", help="configuration file (default: $NETGUARD_CONFIG)")
    serve.add_argument("--bind", help="host:port (default from config, or $NETGUARD_BIND)")
    serve.add_argument("--policies", help="policies folder (default from config)")
    serve.add_argument("--check-only", action="store_true",
                       help="load configuration and policies, then exit without serving")

    cert = sub.add_parser("certs", help="TLS certificates for the webhook")
    cert_sub = cert.add_subparsers(dest="certs_command", required=True)
    gen = cert_sub.add_parser("generate", help="a CA and a serving certificate (ECDSA P-256)")
    gen.add_argument("--service", default="netguard")
    gen.add_argument("--namespace", default="netguard")
    gen.add_argument("--out", default="certs/", type=Path)
    gen.add_argument("--days", type=int, default=365)
    gen.add_argument("--force", action="store_true", help="overwrite existing keys")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "certs":
            return _certs(args)
    except (config.ConfigError, PolicyLoadError, EngineError, certs.CertsExistError) as exc:
        print(f"netguard: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_USAGE  # pragma: no cover - argparse requires a command


def _serve(args: argparse.Namespace) -> int:
    from webhook.pipeline import build_pipeline

    if args.config:
        os.environ[config.ENV_CONFIG] = args.config
    if args.bind:
        os.environ["NETGUARD_BIND"] = args.bind
    if args.policies:
        os.environ["NETGUARD_POLICIES_DIR"] = args.policies
    settings = config.load()
    pipeline = build_pipeline(settings)  # fail here, with file and line, not inside a worker
    pipeline.engine.close()
    for path in (settings.server.tls_cert, settings.server.tls_key):
        if not Path(path).is_file():
            raise config.ConfigError(f"TLS file {path} not found; run `netguard certs generate` (or `make certs`)")
    print(f"netguard: {len(pipeline.policies.guardrails)} guardrails, revision {pipeline.revision}, "
          f"engine {settings.engine.type}, serving https://{settings.server.bind}", file=sys.stderr)
    if args.check_only:
        return EXIT_OK
    gunicorn_args = ["gunicorn", "--config", "python:webhook.gunicorn_conf", "webhook.server:create_app()"]
    os.execvp(sys.executable, [sys.executable, "-m", *gunicorn_args])
    return EXIT_OK  # pragma: no cover - exec does not return


def _certs(args: argparse.Namespace) -> int:
    paths = certs.generate(args.service, args.namespace, args.out, force=args.force, days=args.days)
    info = certs.describe(paths.cert)
    print(f"wrote {paths.ca_cert}, {paths.ca_key}, {paths.cert}, {paths.key}", file=sys.stderr)
    print(f"serving certificate for {', '.join(map(str, info['dns_names']))} "  # type: ignore[call-overload]
          f"valid until {info['not_valid_after']}", file=sys.stderr)
    print("caBundle (base64 CA certificate, for the webhook configurations):", file=sys.stderr)
    print(certs.ca_bundle(paths.ca_cert))
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
