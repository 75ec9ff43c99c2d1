"""The configuration's typed values: frozen dataclasses with the defaults netguard runs on.

Pure, so the core can read them: reading, validating and overriding the YAML file is webhook/config.py's job."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from webhook.core.limits import Limits
from webhook.core.model import Mode


@dataclass(frozen=True)
class OpaSettings:
    url: str = "http://127.0.0.1:8181"
    timeout_seconds: float = 1.5
    push_policies: bool = True
    token: str = ""
    ca_file: str = ""


@dataclass(frozen=True)
class EngineSettings:
    type: str = "regorus"
    on_error: str = "deny"
    opa: OpaSettings = field(default_factory=OpaSettings)
    # Time for all evaluations of one admission request; must stay below the webhook configuration's
    # timeoutSeconds (5) so netguard answers (with on_error) before the API server gives up on it.
    budget_seconds: float = 2.0
    # regorus evaluator processes per gunicorn worker (webhook/engine/evalpool.py), about 12 MB each.
    evaluators: int = 2


@dataclass(frozen=True)
class CheckSettings:
    """Limits of one POST /v1/check call, served on server.check_bind with its own threads."""

    threads: int = 2
    evaluators: int = 1  # regorus evaluator processes of the check listener, apart from admission's
    max_documents: int = 200
    max_body_bytes: int = 1024 * 1024
    timeout_seconds: float = 10.0
    max_response_bytes: int = 2 * 1024 * 1024


@dataclass(frozen=True)
class ServerSettings:
    bind: str = "0.0.0.0:8443"
    tls_cert: str = "certs/tls.crt"
    tls_key: str = "certs/tls.key"
    # Mutual TLS on the admission listener: a PEM CA bundle; /validate and /mutate then need a client
    # certificate that chains to it (the API server's), probes and metrics do not ("" turns it off).
    client_ca: str = ""
    workers: int = 0
    threads: int = 4
    # Longer than the API server client's 90 s idle timeout, so the client closes idle
    # connections first and never reuses one the server has just dropped.
    keepalive_seconds: int = 120
    graceful_timeout_seconds: int = 20
    max_body_bytes: int = 3 * 1024 * 1024
    max_json_depth: int = 64
    # Slow and idle clients (webhook/serve/worker.py): the TLS handshake must end within handshake_timeout_seconds
    # of the accept, a request head within head_timeout_seconds of its first byte, and a body within
    # body_timeout_seconds of a thread taking the request; a kept-alive connection idles keepalive_seconds.
    handshake_timeout_seconds: float = 2.0
    head_timeout_seconds: float = 2.0
    body_timeout_seconds: float = 5.0
    max_connections: int = 1000  # per worker: handshaking, idle, reading or in a thread
    max_idle_connections: int = 100  # per worker; beyond it (or at max_connections) the oldest idle close
    # Load shedding: a request that waited for a thread longer than this share of its deadline (the API
    # server's ?timeout=, else request_deadline_seconds) is answered at once with engine.on_error.
    request_deadline_seconds: float = 5.0
    shed_queue_fraction: float = 0.4
    # POST /v1/check on its own listener, threads and evaluators ("" turns it off).
    check_bind: str = "0.0.0.0:8444"
    check: CheckSettings = field(default_factory=lambda: CheckSettings())


@dataclass(frozen=True)
class LoggingSettings:
    level: str = "info"
    format: str = "auto"


@dataclass(frozen=True)
class RuleSettings:
    mode: Mode | None = None
    parameters: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GitopsController:
    username: str
    namespaces: tuple[str, ...]


@dataclass(frozen=True)
class PlatformSettings:
    users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ("system:masters",)
    gitops_controllers: tuple[GitopsController, ...] = ()


@dataclass(frozen=True)
class Override:
    namespaces: tuple[str, ...] = ()
    namespace_labels: Mapping[str, str] = field(default_factory=dict)
    rules: Mapping[str, Mode] = field(default_factory=dict)
    reason: str = ""


@dataclass(frozen=True)
class ConfigException:
    rules: tuple[str, ...]
    namespace: str
    name: str
    expires: date
    reason: str
    ticket: str = ""


@dataclass(frozen=True)
class ExceptionKey:
    id: str
    public_key: str


@dataclass(frozen=True)
class TokenRules:
    """What a validly signed exception token must also meet (exceptions.max_lifetime_days, exceptions.revoked):
    a signature cannot be withdrawn, so a lifetime cap and a list of revoked token ids bound what a leaked or
    regretted token can do without rotating the key."""

    max_lifetime_days: int = 90
    revoked: tuple[str, ...] = ()


@dataclass(frozen=True)
class ClusterSettings:
    """The webhook's watch of the cluster (webhook/cluster/cluster_view.py); off by default: `make run` needs no
    cluster."""

    enabled: bool = False
    kubeconfig: str = ""  # "" with in_cluster false: the client's default ($KUBECONFIG, ~/.kube/config)
    in_cluster: bool = False
    stale_after_seconds: float = 60.0
    resync_seconds: float = 300.0


@dataclass(frozen=True)
class CacheSettings:
    """The verdict cache (webhook/core/verdict_cache.py): decisions of identical requests, per worker process."""

    enabled: bool = True
    max_entries: int = 4096


def _packaged_policies_dir() -> str:
    from webhook.packaged import packaged_catalog

    return str(packaged_catalog())


# Where Settings.policies_dir came from, for `netguard policies path` and `netguard --version`: the --policies
# flag, then $NETGUARD_POLICIES_DIR, then policies_dir in the configuration file, else the packaged catalog.
POLICIES_PACKAGED = "packaged"


POLICIES_FROM_ENV = "env NETGUARD_POLICIES_DIR"


POLICIES_FROM_FLAG = "flag --policies"


@dataclass(frozen=True)
class Settings:
    # Default: the catalog that ships with netguard (webhook/catalog in a wheel, policies/ of a source checkout),
    # never ./policies, which in a team's repository may be an unrelated folder.
    policies_dir: str = field(default_factory=_packaged_policies_dir)
    policies_from: str = POLICIES_PACKAGED  # or "config policies_dir in <file>", POLICIES_FROM_ENV or _FLAG
    dry_run: bool = False
    excluded_namespaces: tuple[str, ...] = ("kube-system", "netguard")
    engine: EngineSettings = field(default_factory=EngineSettings)
    server: ServerSettings = field(default_factory=ServerSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    rules: Mapping[str, RuleSettings] = field(default_factory=dict)
    platform: PlatformSettings = field(default_factory=PlatformSettings)
    namespace_labels: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    overrides: tuple[Override, ...] = ()
    existing_violations: str = "warn"
    exceptions: tuple[ConfigException, ...] = ()
    exception_keys: tuple[ExceptionKey, ...] = ()
    exception_tokens: TokenRules = field(default_factory=TokenRules)  # the mapping form of `exceptions:`
    cluster: ClusterSettings = field(default_factory=ClusterSettings)
    limits: Limits = field(default_factory=Limits)  # the largest object judged (webhook/core/limits.py)
    cache: CacheSettings = field(default_factory=CacheSettings)
    source: str = "(defaults)"


class ConfigError(Exception):
    """The configuration is invalid; the message names the file and the key."""
