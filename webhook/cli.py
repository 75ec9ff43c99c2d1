# PYTHON_ARGCOMPLETE_OK
"""The `netguard` command: serve, check, explain, audit, baseline, suggest, tighten, policies, exception, certs,
doctor.

Thin: parses arguments, calls the library, maps errors to exit codes (0 ok, 1 findings,
2 usage or input error). `serve` validates configuration and policies in this process first,
so a typo or a Rego error is reported with its file and line before gunicorn starts.

Size: over 400 lines because it is the one parser of every subcommand (argparse needs them in one tree for
help, completion and the kubectl plugin's flag mapping); each subcommand's work is a call into the library.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from datetime import UTC
from pathlib import Path
from typing import IO, Any, cast

from webhook import config, reports
from webhook.core import exceptions
from webhook.core.model import POLICY_KINDS, UserInfo
from webhook.core.settings import POLICIES_FROM_FLAG, POLICIES_PACKAGED, ConfigError, ExceptionKey, Settings, TokenRules
from webhook.engine.engines import EngineError
from webhook.engine.policies import PolicyLoadError
from webhook.pki import certs

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE = 0, 1, 2
EXIT_BROKEN_PIPE = 128 + 13  # SIGPIPE
POLICIES_HELP = ("guardrail catalog folder (default: $NETGUARD_POLICIES_DIR, else policies_dir in the configuration, "
                 "else the catalog installed with netguard; `netguard policies path` shows which)")


class _Version(argparse.Action):
    """--version: computed only when asked (it hashes the catalog), printed like argparse's version action."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, **kwargs: Any) -> None:
        super().__init__(option_strings, dest=dest, default=argparse.SUPPRESS, nargs=0, help=kwargs.get("help"))

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        print(version_line())
        parser.exit()


def package_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("netguard")
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"


def version_line() -> str:
    """`netguard 0.1.0 (catalog 19deb87af1dc)`: the package and the revision of the catalog commands use by
    default; where that catalog is not the packaged one, where it comes from too."""
    from webhook.engine.policies import catalog_revision

    try:
        settings = config.load()
        catalog = f"catalog {catalog_revision(settings.policies_dir)}"
        if settings.policies_from != POLICIES_PACKAGED:
            catalog += f" from {settings.policies_from}"
    except (ConfigError, PolicyLoadError, OSError) as exc:
        catalog = f"catalog unavailable: {exc}"
    return f"netguard {package_version()} ({catalog})"


def _settings(args: argparse.Namespace) -> Settings:
    """The configuration (--config or $NETGUARD_CONFIG) with the catalog every command uses: --policies, else
    $NETGUARD_POLICIES_DIR, else the configuration's policies_dir, else the catalog packaged with netguard."""
    settings = config.load(getattr(args, "config", None))
    if getattr(args, "policies", None):
        settings = config.with_overrides(settings, policies_dir=args.policies, policies_from=POLICIES_FROM_FLAG)
    return settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="netguard", description="Network policy guardrails for Kubernetes")
    parser.add_argument("--version", action=_Version, help="print netguard's version and the catalog's revision")
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
    inst = cert_sub.add_parser("install", help="put the CA into the caBundle of netguard's webhook configurations")
    inst.add_argument("--ca", type=Path, required=True, help="the CA certificate (e.g. certs/ca.crt); never a key")
    target = inst.add_mutually_exclusive_group(required=True)
    target.add_argument("--files", nargs="+", type=Path, metavar="FILE",
                        help="edit these manifests in place (e.g. deploy/base/validating-webhook.yaml)")
    target.add_argument("--cluster", action="store_true", help="patch the configurations in the cluster")
    inst.add_argument("--kubeconfig", help="with --cluster: kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
    inst.add_argument("--context", help="with --cluster: kubeconfig context")
    inst.add_argument("--name", default="netguard", help="name of the webhook configurations (default: netguard)")
    chk = sub.add_parser("check", help="check manifests against the guardrails before applying them")
    chk.add_argument("paths", nargs="*", default=["-"], help="files or folders (recursive); - for stdin")
    chk.add_argument("--namespace", help="namespace for manifests without one (default: default)")
    chk.add_argument("--user", default="netguard-check", help="evaluate as this requester")
    chk.add_argument("--group", action="append", help="requester group (repeatable)")
    chk.add_argument("--config", help="configuration file (default: $NETGUARD_CONFIG)")
    chk.add_argument("--policies", metavar="DIR", help=POLICIES_HELP)
    chk.add_argument("--format", choices=list(reports.formats(reports.CHECK)), default="text",
                     help=reports.help_text(reports.CHECK, "text"))
    chk.add_argument("--output", "-o", type=Path, help="write the report to this file instead of stdout")
    chk.add_argument("--fail-on", choices=["enforce", "warn"], default="enforce",
                     help="exit 1 on enforce findings (default), or on warnings too (warn)")

    exp = sub.add_parser("explain", help="what a policy really allows, in plain English")
    exp.add_argument("paths", nargs="*", default=["-"], help="files or folders; - for stdin")
    exp.add_argument("--namespace", help="namespace for manifests without one (default: default)")
    exp.add_argument("--format", choices=["text", "json"], default="text")

    base = sub.add_parser("baseline", help="print the recommended default-deny baseline for a namespace")
    base.add_argument("--namespace", required=True)
    base.add_argument("--flavor", choices=["kubernetes", "cilium", "cnp-admin", "cnp-baseline", "calico"],
                      default="kubernetes")
    base.add_argument("--allow-dns", action="store_true", help="allow DNS to kube-dns (UDP/TCP 53)")
    base.add_argument("--allow-same-namespace", action="store_true", help="allow traffic inside the namespace")

    sug = sub.add_parser("suggest", help="least-privilege policies for a namespace's workloads, from Hubble flows")
    sug.add_argument("--flows", nargs="+", required=True, metavar="FILE",
                     help="Hubble exports (hubble observe -o jsonpb, Exporter files; plain or gzip); - for stdin")
    sug.add_argument("--namespace", "-n", required=True, metavar="NS")
    sug.add_argument("--flavor", choices=["cilium", "kubernetes"], default="cilium",
                     help="CiliumNetworkPolicy (default, with toFQDNs) or NetworkPolicy")
    sug.add_argument("--since", help="only flows from this time (ISO 8601)")
    sug.add_argument("--until", help="only flows up to this time (ISO 8601)")
    sug.add_argument("--output", "-o", type=Path, help="write the policies to this file instead of stdout")

    tig = sub.add_parser("tighten", help="narrow a policy to what Hubble flows show it carried, as a diff")
    tig.add_argument("policy", metavar="POLICY",
                     help="the NetworkPolicy or Cilium(Clusterwide)NetworkPolicy file; - for stdin")
    tig.add_argument("--flows", nargs="+", required=True, metavar="FILE",
                     help="Hubble exports (hubble observe -o jsonpb, Exporter files; plain or gzip)")
    tig.add_argument("--since", help="only flows from this time (ISO 8601)")
    tig.add_argument("--until", help="only flows up to this time (ISO 8601)")
    tig.add_argument("--format", choices=["diff", "yaml"], default="diff",
                     help="a unified diff (default) or the narrowed policy")
    tig.add_argument("--output", "-o", type=Path,
                     help="write the narrowed policy to this file (the diff still goes to stdout)")

    aud = sub.add_parser("audit", help="what is in a cluster (or in manifests) against the guardrails, with posture")
    aud.add_argument("--from", dest="from_paths", action="append", metavar="PATH",
                     help="read manifests instead of a cluster (repeatable; files or folders; - for stdin)")
    aud.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
    aud.add_argument("--context", help="kubeconfig context")
    aud.add_argument("--in-cluster", action="store_true", help="use the pod's service account")
    aud.add_argument("--namespace", "-n", metavar="NS",
                     help="only this namespace: its policies, workloads and posture (clusterwide policies are kept, "
                          "since they apply to it too)")
    aud.add_argument("--no-workloads", action="store_true", help="do not list pods")
    aud.add_argument("--decisions", type=Path, help="the webhook's decision log (JSON lines)")
    aud.add_argument("--flows", nargs="+", action="extend", metavar="FILE",
                     help="Hubble flow exports (hubble observe -o jsonpb, or Exporter files; plain or gzip; - for "
                          "stdin): match every flow to every allow rule and report unused, broader-than-observed "
                          "rules and dropped DNS (guardrails unused-rule, broader-than-observed, dropped-needed)")
    aud.add_argument("--since", help="period start for the decision log and the flows (ISO 8601)")
    aud.add_argument("--until", help="period end for the decision log and the flows (ISO 8601)")
    aud.add_argument("--include-unauthenticated", action="store_true",
                     help="also count decision log lines whose caller was not authenticated with a client "
                          "certificate (server.client_ca); anyone reaching the port can write those")
    aud.add_argument("--config", help="configuration file (default: $NETGUARD_CONFIG)")
    aud.add_argument("--policies", metavar="DIR", help=POLICIES_HELP)
    aud.add_argument("--format", choices=list(reports.formats(reports.AUDIT)), default="markdown",
                     help=reports.help_text(reports.AUDIT, "markdown"))
    aud.add_argument("--output", "-o", type=Path, help="write the report to this file instead of stdout")
    aud.add_argument("--jobs", "-j", type=_jobs, metavar="N",
                     help="processes that read and review the policies (default: one per CPU; 1: no extra "
                          "processes); the report is the same whatever N")

    doc = sub.add_parser("doctor", help="check an installation from the outside in and say what to fix")
    doc.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
    doc.add_argument("--context", help="kubeconfig context")
    doc.add_argument("--name", default="netguard", help="name of the webhook configurations (default: netguard)")
    doc.add_argument("--secret", default="netguard-tls",
                     help="the serving certificate's Secret (default: netguard-tls)")
    doc.add_argument("--namespace", default="default",
                     help="a namespace netguard reviews, for the dry-run policies (default: default)")
    doc.add_argument("--timeout", type=float, default=15, help="seconds per API call (default: 15)")

    pol = sub.add_parser("policies", help="the guardrail catalog")
    pol_sub = pol.add_subparsers(dest="policies_command", required=True)
    ptest = pol_sub.add_parser("test", help="run every guardrail's Rego unit tests and sample manifests")
    ptest.add_argument("--policies", metavar="DIR", help=POLICIES_HELP)
    ptest.add_argument("-v", "--verbose", action="store_true", help="list passing checks too")
    pol_sub.add_parser("list", help="the guardrails with their default mode and severity").add_argument(
        "--policies", metavar="DIR", help=POLICIES_HELP)
    pol_sub.add_parser("docs", help="the catalog as Markdown (docs/guardrails.md)").add_argument(
        "--policies", metavar="DIR", help=POLICIES_HELP)
    ppath = pol_sub.add_parser("path", help="which catalog is in use: its folder, revision and where the choice "
                                            "came from (flag, env, config or packaged)")
    ppath.add_argument("--policies", metavar="DIR", help=POLICIES_HELP)
    ppath.add_argument("--config", help="configuration file (default: $NETGUARD_CONFIG)")

    exc = sub.add_parser("exception", help="signed, time-limited exceptions (netguard.io/exception)")
    exc_sub = exc.add_subparsers(dest="exception_command", required=True)
    keygen = exc_sub.add_parser("keygen", help="an Ed25519 key pair for the security team")
    keygen.add_argument("--out", type=Path, default=Path("."), help="folder for netguard-exception.key/.pub")
    keygen.add_argument("--id", default="security", help="key id, as listed in exception_keys")
    keygen.add_argument("--force", action="store_true")
    sign = exc_sub.add_parser("sign", help="print a token granting an exception")
    sign.add_argument("--key", type=Path, required=True, help="private key (PEM) from keygen")
    sign.add_argument("--key-id", default="security")
    sign.add_argument("--rule", action="append", required=True, help="guardrail id (repeatable)")
    sign.add_argument("--namespace", required=True, help="namespace (glob); \"\" for clusterwide policies")
    sign.add_argument("--name", required=True, help="policy name (glob)")
    sign.add_argument("--kind", required=True, choices=[k.kind for k in POLICY_KINDS],
                      help="the policy's kind: a token never exempts another kind of the same name")
    sign.add_argument("--expires", required=True,
                      help="last day the exception applies (YYYY-MM-DD), at most exceptions.max_lifetime_days ahead")
    sign.add_argument("--reason", required=True)
    sign.add_argument("--ticket", default="")
    sign.add_argument("--bind-spec", type=Path, metavar="FILE",
                      help="the policy (YAML/JSON, as the API server stores it): the token then stops applying "
                           "once its spec changes")
    sign.add_argument("--config", help="configuration file with exceptions.max_lifetime_days "
                                       "(default: $NETGUARD_CONFIG)")
    verify = exc_sub.add_parser("verify", help="check a token against the configured public keys")
    verify.add_argument("token", help="the token, or - to read it from standard input")
    verify.add_argument("--config", help="configuration file with exception_keys (default: $NETGUARD_CONFIG)")
    verify.add_argument("--public-key", type=Path, help="a public key file instead of the configuration")
    verify.add_argument("--key-id", default="security", help="key id to use with --public-key")

    comp = sub.add_parser("completion", help="print the shell code that completes netguard's commands and options")
    comp.add_argument("shell", choices=["bash", "zsh", "fish"], help="the shell to complete in")
    comp.add_argument("--prog", action="append", metavar="NAME",
                      help="complete this command name (repeatable; default: netguard and kubectl-netguard)")
    _terminal_options(parser)
    return parser


def _terminal_options(parser: argparse.ArgumentParser, *, top: bool = True) -> None:
    """--color and --quiet on every (sub)command, before or after the subcommand's name.

    Below the top level the defaults are SUPPRESS, so a subcommand that is not given the option does not
    overwrite what was given before its name.
    """
    default_color: Any = "auto" if top else argparse.SUPPRESS
    default_quiet: Any = False if top else argparse.SUPPRESS
    from webhook.terminal import COLOR_CHOICES

    parser.add_argument("--color", choices=COLOR_CHOICES, default=default_color,
                        help="colour the text output: auto (on a terminal, unless NO_COLOR is set), always, never")
    parser.add_argument("--quiet", "-q", action="store_true", default=default_quiet,
                        help="only results, findings and errors: no progress, summaries or informational lines")
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                _terminal_options(child, top=False)


def _info(args: argparse.Namespace, message: str) -> None:
    """An informational line on stderr, unless --quiet."""
    if not getattr(args, "quiet", False):
        print(message, file=sys.stderr)


def _paint(args: argparse.Namespace, stream: Any = None) -> Any:
    from webhook.terminal import paint_for

    return paint_for(stream or sys.stdout, getattr(args, "color", "auto"))


def _style(args: argparse.Namespace) -> reports.Style:
    """How `check` and `audit` dress a report for people: colour on a terminal (in a file only with --color
    always), no summary with --quiet. Formats for machines ignore it."""
    from webhook.terminal import Paint

    paint = Paint(args.color == "always") if args.output else _paint(args)
    return reports.Style(paint, quiet=getattr(args, "quiet", False))


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    if "_ARGCOMPLETE" in os.environ:  # a shell asking for completions (netguard completion bash|zsh|fish)
        import argcomplete

        argcomplete.autocomplete(parser)  # answers on fd 8 and exits
    args = parser.parse_args(argv)
    try:
        if args.command == "completion":
            return _completion(args)
        if args.command == "serve":
            return _serve(args)
        if args.command == "certs":
            return _certs(args)
        if args.command == "exception":
            return _exception(args)
        if args.command == "policies":
            return _policies(args)
        if args.command == "check":
            return _check(args)
        if args.command == "explain":
            return _explain(args)
        if args.command == "baseline":
            return _baseline(args)
        if args.command == "suggest":
            return _suggest(args)
        if args.command == "tighten":
            return _tighten(args)
        if args.command == "audit":
            return _audit(args)
        if args.command == "doctor":
            return _doctor(args)
    except BrokenPipeError:
        # The reader went away (`netguard check k8s/ | head`): stop quietly, as other Unix tools do. Python would
        # complain again when it flushes stdout at exit, so stdout is pointed at /dev/null first (the Python
        # docs' recipe for SIGPIPE). 141 is what a shell reports for a process ended by SIGPIPE.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except (ConfigError, PolicyLoadError, EngineError, certs.CertsExistError, exceptions.TokenError,
            ValueError, OSError) as exc:
        print(f"netguard: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_USAGE  # pragma: no cover - argparse requires a command


def _completion(args: argparse.Namespace) -> int:
    from argcomplete.shell_integration import shellcode

    sys.stdout.write(shellcode(args.prog or ["netguard", "kubectl-netguard"], shell=args.shell))
    return EXIT_OK


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
            raise ConfigError(f"TLS file {path} not found; run `netguard certs generate` (or `make certs`)")
    if settings.server.client_ca:
        from webhook.serve.tls import check_client_ca

        check_client_ca(settings.server.client_ca)  # here, not at a worker's first connection
    _info(args, f"netguard: {len(pipeline.policies.guardrails)} guardrails, revision {pipeline.revision}, "
          f"engine {settings.engine.type}, serving https://{settings.server.bind}"
          + (f" (POST /v1/check on https://{settings.server.check_bind})" if settings.server.check_bind else ""))
    if args.check_only:
        return EXIT_OK
    gunicorn_args = ["gunicorn", "--config", "python:webhook.serve.gunicorn_conf", "webhook.serve.server:create_app()"]
    os.execvp(sys.executable, [sys.executable, "-m", *gunicorn_args])
    return EXIT_OK  # pragma: no cover - exec does not return


def _certs(args: argparse.Namespace) -> int:
    if args.certs_command == "install":
        return _certs_install(args)
    paths = certs.generate(args.service, args.namespace, args.out, force=args.force, days=args.days)
    info = certs.describe(paths.cert)
    _info(args, f"wrote {paths.ca_cert}, {paths.ca_key}, {paths.cert}, {paths.key}")
    _info(args, f"serving certificate for {', '.join(map(str, info['dns_names']))} "  # type: ignore[call-overload]
          f"valid until {info['not_valid_after']}")
    _info(args, "caBundle (base64 CA certificate, for the webhook configurations):")
    print(certs.ca_bundle(paths.ca_cert))
    return EXIT_OK


def _certs_install(args: argparse.Namespace) -> int:
    from webhook.pki import install

    if args.files and (args.kubeconfig or args.context):
        raise ValueError("--kubeconfig and --context go with --cluster, not --files")
    bundle = install.read_ca_bundle(args.ca)
    if args.files:
        edits = install.plan_files(args.files, args.name, bundle)
        install.write_files(edits)
        for edit in edits:
            for c in edit.changes:
                state = "caBundle set" if c.changed else "caBundle already set"
                _info(args, f"{edit.path}: {c.kind} {c.configuration}, webhook {c.webhook}: {state}")
        return EXIT_OK
    from webhook.cluster.api import ClusterError
    from webhook.cluster.webhooks import patch_webhook_configurations

    try:
        results = patch_webhook_configurations(args.name, lambda obj: install.ca_bundle_patch(obj, bundle),
                                               args.kubeconfig, args.context)
    except ClusterError as exc:
        print(f"netguard: {exc}", file=sys.stderr)
        return EXIT_USAGE
    for r in results:
        changed = install.patched_webhooks(r.patch)
        state = f"caBundle set on {changed} of {r.webhooks} webhooks" if changed else \
            f"caBundle already set on all {r.webhooks} webhooks"
        _info(args, f"{r.kind} {r.name}: {state}")
    return EXIT_OK


def _check(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from webhook.offline.check import DEFAULT_GROUPS, check_documents
    from webhook.offline.sources import read_paths
    from webhook.pipeline import build_pipeline

    settings = _settings(args)
    pipeline = build_pipeline(settings)
    documents, errors = read_paths(args.paths, sys.stdin)
    requester = UserInfo(args.user, groups=tuple(args.group or DEFAULT_GROUPS))
    report = check_documents(pipeline, documents, errors, namespace=args.namespace, requester=requester)
    report = replace(report, fail_on=args.fail_on)
    text = reports.render_check(args.format, report, _style(args))
    if args.output:
        args.output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return report.exit_code


def _explain(args: argparse.Namespace) -> int:
    import json

    from webhook import kinds
    from webhook.core.explain import explain, render_text
    from webhook.core.facts import FactParams, enrich
    from webhook.core.normalize import normalize
    from webhook.core.shape import ShapeError
    from webhook.offline.sources import read_paths

    documents, errors = read_paths(args.paths, sys.stdin)
    for err in errors:
        print(f"{err.source}:{err.line}:{err.col}: error: {err.message}", file=sys.stderr)
    explained = []
    failed = bool(errors)
    for doc in documents:
        if kinds.of(doc.obj) is None:  # not a guarded kind (webhook/kinds): group and kind
            continue
        try:
            policy = enrich(normalize(doc.in_namespace(args.namespace).obj), FactParams())
        except ShapeError as exc:
            line, col = doc.position(exc.path)
            print(f"{doc.source}:{line}:{col}: error: {exc}", file=sys.stderr)
            failed = True
            continue
        where = f"{policy.namespace}/{policy.name}" if policy.namespace else policy.name
        explained.append((f"{where} ({policy.kind}, {doc.source}:{doc.line})", explain(policy)))
    if args.format == "json":
        print(json.dumps([{"policy": title, **e.to_json()} for title, e in explained], indent=2))
    else:
        paint = _paint(args)  # each policy's heading in bold on a terminal
        sys.stdout.write("".join(paint.bold(line[:-1]) + "\n" if line[:1] not in ("", " ", "\n") else line
                                 for line in render_text(explained).splitlines(keepends=True)))
    return EXIT_USAGE if failed else EXIT_OK


def _doctor(args: argparse.Namespace) -> int:
    from webhook.cluster import doctor
    from webhook.cluster.api import ClusterError
    from webhook.cluster.api_reader import ApiReader

    try:
        reader = ApiReader(args.kubeconfig, args.context, timeout_seconds=args.timeout)
        try:
            found = doctor.read(reader, args.name, secret_name=args.secret, probe_namespace=args.namespace)
        finally:
            reader.close()
    except ClusterError as exc:
        print(f"netguard: {exc}", file=sys.stderr)
        return EXIT_USAGE
    checks = doctor.run_checks(found)
    paint = _paint(args)
    for check in checks:
        if args.quiet and check.ok is not False:
            continue
        line = check.line()
        style = paint.ok if check.ok else paint.error if check.ok is False else paint.dim
        print(style(line[:4]) + line[4:])
    return EXIT_FINDINGS if any(c.ok is False for c in checks) else EXIT_OK


def _audit(args: argparse.Namespace) -> int:
    from concurrent.futures.process import BrokenProcessPool

    try:
        return _run_audit(args)
    except BrokenProcessPool:  # a worker was killed (out of memory?) or crashed: its policies have no result
        print("netguard: an audit worker process ended abruptly (out of memory?); --jobs 1 audits in one process",
              file=sys.stderr)
        return EXIT_USAGE


def _run_audit(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from webhook.offline.audit import audit
    from webhook.offline.decisionlog import read_decisions
    from webhook.offline.fanout import default_jobs
    from webhook.offline.inventory import from_documents
    from webhook.pipeline import build_pipeline

    settings = _settings(args)
    jobs = args.jobs or default_jobs()
    if args.from_paths:
        from webhook.offline.sources import read_paths

        documents, errors = read_paths(args.from_paths, sys.stdin, jobs=jobs)
        inventory = from_documents(documents, errors, "files " + ", ".join(args.from_paths))
    else:
        from webhook.cluster.api import ClusterError
        from webhook.cluster.kube import load_inventory

        try:
            inventory = load_inventory(args.kubeconfig, args.context, in_cluster=args.in_cluster,
                                       include_workloads=not args.no_workloads)
        except ClusterError as exc:
            print(f"netguard: {exc}", file=sys.stderr)
            return EXIT_USAGE
    if args.namespace:
        inventory = _one_namespace(inventory, args.namespace)
    # Namespace labels from the inventory drive namespace overrides, as they will in the webhook.
    settings = config.with_overrides(settings, namespace_labels={
        **inventory.namespace_labels(), **settings.namespace_labels})
    pipeline = build_pipeline(settings)
    decisions = None
    if args.decisions:
        since, until = _instant(args.since), _instant(args.until)
        with args.decisions.open(encoding="utf-8", errors="replace") as handle:
            decisions = read_decisions(handle, since, until, include_unauthenticated=args.include_unauthenticated)
    on_terminal = sys.stderr.isatty() and not args.quiet
    report = audit(pipeline, inventory, decisions=decisions, jobs=jobs,
                   progress=lambda docs: tqdm(docs, desc="auditing", unit="policy", disable=not on_terminal,
                                              file=sys.stderr),
                   flows=_flow_matcher(args.flows, _instant(args.since), _instant(args.until), on_terminal)
                   if args.flows else None)
    text = reports.render_audit(args.format, report, _style(args))
    if args.output:
        args.output.write_text(text, encoding="utf-8")
        if on_terminal:
            print(f"wrote {args.output}: {len(report.findings)} findings in {report.policies} policies",
                  file=sys.stderr)
    else:
        sys.stdout.write(text)
    return EXIT_OK


def _flow_matcher(paths: Sequence[str], since: Any, until: Any, show_progress: bool) -> Any:
    """The audit's --flows: reads the exports (streamed) and matches them to the policies the audit models."""
    from webhook.offline.flow_match import match_flows
    from webhook.offline.flows import FlowStats, read_flows

    def matcher(policies: Any, namespaces: Any) -> Any:
        stats = FlowStats()
        with _flow_streams(paths, show_progress) as streams:
            return match_flows(policies, read_flows(streams, stats, since, until), namespaces, stats, since, until)

    return matcher


def _one_namespace(inventory: Any, namespace: str) -> Any:
    """The inventory narrowed to one namespace: its Namespace, policies and workloads, and every clusterwide
    policy (a CiliumClusterwideNetworkPolicy applies there too, and counts for its default deny)."""
    from dataclasses import replace

    from webhook.offline.sources import cluster_scoped

    def where(obj: dict[str, Any]) -> str:  # manifests without a namespace are audited in "default"
        meta = obj.get("metadata")
        return str(meta.get("namespace") or "default") if isinstance(meta, dict) else "default"

    policies = tuple(d for d in inventory.policies
                     if cluster_scoped(d.obj) or where(d.obj) == namespace)
    workloads = None if inventory.workloads is None else tuple(
        w for w in inventory.workloads if w.namespace == namespace)
    return replace(inventory, source=f"{inventory.source}, namespace {namespace}",
                   namespaces=tuple(ns for ns in inventory.namespaces if ns.name == namespace),
                   policies=policies, workloads=workloads)


def _jobs(text: str) -> int:
    """--jobs: a positive number of processes."""
    try:
        jobs = int(text)
    except ValueError:
        jobs = 0
    if jobs < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of processes")
    return jobs


def _instant(text: str | None) -> Any:
    """An ISO 8601 time for the decision-log period; a time without a zone is UTC (the log's zone)."""
    from datetime import datetime

    if not text:
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 time (e.g. 2026-11-01 or 2026-11-01T12:00:00Z)") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@contextmanager
def _flow_streams(paths: Sequence[str], show_progress: bool) -> Iterator[list[IO[bytes]]]:
    """The Hubble exports named on the command line (- for stdin), opened as binary streams; with
    `show_progress` each file shows a progress bar by bytes read on stderr (a 1 GB export takes a while)."""
    from tqdm import tqdm

    with ExitStack() as stack:
        streams: list[IO[bytes]] = []
        for path in paths:
            if path == "-":
                streams.append(sys.stdin.buffer)
                continue
            handle: IO[bytes] = stack.enter_context(open(path, "rb"))
            if show_progress:
                bar = stack.enter_context(tqdm(total=os.path.getsize(path), desc=Path(path).name, unit="B",
                                               unit_scale=True, file=sys.stderr, leave=False))
                handle = cast(IO[bytes], _Counted(handle, bar.update))
            streams.append(handle)
        yield streams


class _Counted(io.RawIOBase):
    """A binary file whose reads report their size (the flow reader buffers on top of it)."""

    def __init__(self, raw: IO[bytes], report: Callable[[int], Any]) -> None:
        super().__init__()
        self._raw, self._report = raw, report

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._raw.read(len(buffer))
        buffer[:len(data)] = data
        self._report(len(data))
        return len(data)


def _baseline(args: argparse.Namespace) -> int:
    from webhook.offline.baseline import BaselineOptions, baseline_objects, render_yaml

    options = BaselineOptions(namespace=args.namespace, flavor=args.flavor, allow_dns=args.allow_dns,
                              allow_same_namespace=args.allow_same_namespace)
    sys.stdout.write(render_yaml(baseline_objects(options)))
    return EXIT_OK


def _suggest(args: argparse.Namespace) -> int:
    from webhook.offline.flows import FlowStats, read_flows
    from webhook.offline.suggest import check_namespace, observe, render_yaml, suggest

    check_namespace(args.namespace)  # before reading what may be a gigabyte of flows
    since, until = _instant(args.since), _instant(args.until)
    stats = FlowStats()
    with _flow_streams(args.flows, sys.stderr.isatty() and not args.quiet) as streams:
        observation = observe(read_flows(streams, stats, since, until), args.namespace)
    window = stats.window(since, until)
    suggestion = suggest(observation, args.flavor, window)
    text = render_yaml(suggestion, args.namespace, args.flavor, window, observation.left_out)
    if args.output:
        args.output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    skipped = f" ({stats.malformed} malformed lines skipped)" if stats.malformed else ""
    _info(args, f"{len(suggestion.objects)} policies for namespace {args.namespace} from {observation.counted} of "
                f"{stats.flows} flows read{skipped}")
    return EXIT_OK


def _tighten(args: argparse.Namespace) -> int:
    from webhook.core.shape import ShapeError
    from webhook.core.snapshot import DISABLED, policy_key
    from webhook.offline.flow_match import match_flows
    from webhook.offline.flows import FlowStats, read_flows
    from webhook.offline.sources import read_paths
    from webhook.offline.suggest import FlowNames
    from webhook.offline.tighten import check_supported, diff, learning_names, render, tighten
    from webhook.pipeline import build_pipeline

    documents, errors = read_paths([args.policy], sys.stdin)
    for err in errors:
        print(f"{err.source}:{err.line}:{err.col}: error: {err.message}", file=sys.stderr)
    if errors:
        return EXIT_USAGE
    if not documents:
        raise ValueError(f"{args.policy}: no policy in it")
    for doc in documents:
        check_supported(doc.obj, f"{doc.source}:{doc.line}")
    # The model the audit matches flows to (Pipeline.model: the configured fact parameters decide what counts as
    # the internet or every port), in the namespace kubectl would apply it to.
    pipeline = build_pipeline(_settings(args))
    policies = []
    for doc in documents:
        try:
            policies.append(pipeline.model(doc.in_namespace().obj, DISABLED)[0])
        except ShapeError as exc:
            line, col = doc.position(exc.path)
            print(f"{doc.source}:{line}:{col}: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
    since, until = _instant(args.since), _instant(args.until)
    stats, names = FlowStats(), FlowNames()
    with _flow_streams(args.flows, sys.stderr.isatty() and not args.quiet) as streams:
        evidence = match_flows(policies, learning_names(read_flows(streams, stats, since, until), names), {}, stats,
                               since, until)
    results = [tighten(doc.obj, policy, evidence.for_policy(policy_key(policy)), evidence.window, names)
               for doc, policy in zip(documents, policies, strict=True)]
    narrowed = render(r.narrowed for r in results)
    if args.output:
        args.output.write_text(narrowed, encoding="utf-8")
    sys.stdout.write(narrowed if args.format == "yaml" and not args.output else diff(results, args.policy))
    for policy, result in zip(policies, results, strict=True):
        where = f"{policy.kind} {policy.namespace + '/' if policy.namespace else ''}{policy.name}"
        if not result.observed:
            _info(args, f"{where}: no pod it selects is in the flows ({evidence.window.describe()}): left as it is")
        for change in result.changes:
            _info(args, f"{where} {change.path}: {change.what}")
        if result.observed and not result.changes:
            _info(args, f"{where}: every judged rule carried what it allows; nothing to narrow")
    return EXIT_OK


def _policies(args: argparse.Namespace) -> int:
    from webhook.engine.policies import load_policy_set
    from webhook.pipeline import build_pipeline

    settings = _settings(args)
    if args.policies_command == "path":
        return _policies_path(settings)
    root = settings.policies_dir
    if args.policies_command == "docs":
        from webhook.offline.catalog_docs import render

        sys.stdout.write(render(load_policy_set(root)))
        return EXIT_OK
    if args.policies_command == "list":
        for g in load_policy_set(root).guardrails:
            print(f"{g.id:36} {g.mode.value:8} {g.severity:8} {g.title}")
        return EXIT_OK
    from webhook.offline import regotest

    policies = load_policy_set(root)
    # Every guardrail on, whatever the configuration says: the samples test the rules themselves.
    everything_on = config.from_mapping({"policies_dir": root,
                                         "rules": {g.id: {"mode": "enforce"} for g in policies.guardrails}})
    failures = 0
    for r in regotest.run_rego_tests(policies):
        failures += not r.passed
        if not r.passed or args.verbose:
            detail = f": {r.error}" if r.error else ""
            print(f"{'PASS' if r.passed else 'FAIL'} rego   {r.guardrail}: {r.name}{detail}")
    for s in regotest.run_sample_checks(build_pipeline(everything_on)):
        failures += not s.passed
        if not s.passed or args.verbose:
            print(f"{'PASS' if s.passed else 'FAIL'} sample {s.guardrail}: {s.expected}/{s.sample.name}"
                  + (f": {s.error}" if s.error else ""))
    print(f"{len(policies.guardrails)} guardrails: {'all checks passed' if not failures else f'{failures} failed'}")
    return EXIT_OK if not failures else EXIT_FINDINGS


def _policies_path(settings: Settings) -> int:
    """Which catalog the commands use: the folder and where that choice came from first (shown even when the
    folder does not load), then its revision (as in decisions, metrics and `netguard --version`)."""
    from webhook.engine.policies import load_policy_set

    origin = settings.policies_from
    if origin == POLICIES_PACKAGED:
        origin = f"packaged (installed with netguard {package_version()})"
    print(f"catalog:    {Path(settings.policies_dir).resolve()}")
    print(f"from:       {origin}")
    sys.stdout.flush()
    policies = load_policy_set(settings.policies_dir)
    print(f"revision:   {policies.revision}")
    print(f"guardrails: {len(policies.guardrails)}")
    return EXIT_OK


def _exception(args: argparse.Namespace) -> int:
    if args.exception_command == "keygen":
        return _exception_keygen(args)
    if args.exception_command == "sign":
        return _exception_sign(args)
    return _exception_verify(args)


def _exception_keygen(args: argparse.Namespace) -> int:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from webhook.pki.secret_files import PUBLIC_MODE, write_atomic, write_private_key

    key_path, pub_path = args.out / "netguard-exception.key", args.out / "netguard-exception.pub"
    if os.path.lexists(key_path) and not args.force:  # a dangling symlink counts: it is never followed
        raise certs.CertsExistError(f"{key_path} exists; pass --force to replace it")
    args.out.mkdir(parents=True, exist_ok=True)
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    write_private_key(key_path, pem, force=args.force)
    public = exceptions.public_key_text(private.public_key())
    write_atomic(pub_path, (public + "\n").encode(), mode=PUBLIC_MODE, force=True)
    _info(args, f"wrote {key_path} (keep it with the security team) and {pub_path}")
    print(f"exception_keys:\n  - id: {args.id}\n    public_key: {public}")
    return EXIT_OK


def _exception_sign(args: argparse.Namespace) -> int:
    from datetime import date

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    expires, today = date.fromisoformat(args.expires), date.today()
    max_days = config.load(args.config).exception_tokens.max_lifetime_days
    if expires < today:
        raise ValueError(f"--expires {expires} is in the past")
    too_long = exceptions.lifetime_problem(expires, today, today, max_days)
    if too_long:
        raise ValueError(f"refusing to sign: {too_long}; choose an earlier --expires")
    digest = _bound_spec(args.bind_spec, args.kind, args.namespace, args.name) if args.bind_spec else ""
    loaded = serialization.load_pem_private_key(args.key.read_bytes(), password=None)
    if not isinstance(loaded, Ed25519PrivateKey):
        raise ValueError(f"{args.key} is not an Ed25519 private key")
    token = exceptions.sign(loaded, args.key_id, rules=args.rule, namespace=args.namespace, name=args.name,
                            kind=args.kind, expires=expires, reason=args.reason, ticket=args.ticket,
                            issued=today, spec_digest=digest)
    bound = f"bound to the spec (sha256 {digest})" if digest else "not bound to a spec"
    _info(args, f"token id {exceptions.token_id(token)}, {bound}, until {expires}; annotate the policy with:\n"
          f"  {exceptions.ANNOTATION}: {token}")
    print(token)
    return EXIT_OK


def _bound_spec(path: Path, kind: str, namespace: str, name: str) -> str:
    """The spec digest of the one policy in `path`, read as `netguard check` reads it; it must be the policy the
    token names (kind, and name and namespace within the globs), or the binding would never match."""
    from fnmatch import fnmatchcase

    from webhook.offline.sources import read_text

    docs, errors = read_text(path.read_text(encoding="utf-8"), str(path))
    if errors or len(docs) != 1:
        raise ValueError(f"--bind-spec {path}: expected exactly one readable policy document")
    obj = docs[0].obj
    meta = obj.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    got_ns, got_name = str(meta.get("namespace", "")), str(meta.get("name", ""))
    if obj.get("kind") != kind or not fnmatchcase(got_name, name) or (got_ns and not fnmatchcase(got_ns, namespace)):
        raise ValueError(f"--bind-spec {path}: holds {obj.get('kind')} {got_ns}/{got_name}, "
                         f"not the {kind} {namespace}/{name} the token names")
    return exceptions.spec_digest(obj)


def _exception_verify(args: argparse.Namespace) -> int:
    from dataclasses import replace
    from datetime import date

    token = sys.stdin.read().strip() if args.token == "-" else args.token
    if args.public_key:
        keys: tuple[ExceptionKey, ...] = (
            ExceptionKey(id=args.key_id, public_key=args.public_key.read_text()),)
        rules = TokenRules()
    else:
        settings = config.load(args.config)
        keys, rules = settings.exception_keys, settings.exception_tokens
    granted = exceptions.verify(token, keys)
    today = date.today()
    # No object here to compare a bound spec with: the binding is shown, not judged.
    lapsed = exceptions.lapse_reason(replace(granted, spec_digest=""), rules, today, None)
    state = "EXPIRED" if granted.expired(today) else f"NOT APPLYING ({lapsed})" if lapsed else "valid"
    bound = f"bound to spec sha256 {granted.spec_digest}" if granted.spec_digest else "not bound to a spec"
    print(f"{state}: id {granted.token_id}; rules {', '.join(granted.rules)} for {granted.kind or 'any kind'} "
          f"{granted.namespace}/{granted.name} until {granted.expires} ({granted.source}; {bound}); "
          f"reason: {granted.reason}" + (f"; ticket {granted.ticket}" if granted.ticket else ""))
    return EXIT_OK if state == "valid" else EXIT_FINDINGS


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
