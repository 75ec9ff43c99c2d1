"""gunicorn settings, read from netguard's configuration (gunicorn -c python:webhook.gunicorn_conf).

gthread workers with keep-alive: the API server reuses TLS connections, and a worker class that
closes every connection pays a TLS handshake per request (about 10x lower throughput here).
"""

from __future__ import annotations

import os
import shutil
import ssl
import tempfile
from typing import Any

from webhook import config as _config

_settings = _config.load()
_server = _settings.server


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


bind = [_server.bind]
workers = _server.workers or _cpu_count()
worker_class = "gthread"
threads = _server.threads
keepalive = _server.keepalive_seconds
graceful_timeout = _server.graceful_timeout_seconds
timeout = 30
certfile = _server.tls_cert
keyfile = _server.tls_key
accesslog = None  # one decision line per request comes from the app, in JSON
errorlog = "-"
loglevel = "warning" if _settings.logging.level == "info" else _settings.logging.level
limit_request_line = 8190
proc_name = "netguard"


def ssl_context(conf: Any, default_ssl_context_factory: Any) -> ssl.SSLContext:
    """TLS 1.2 or newer only."""
    context: ssl.SSLContext = default_ssl_context_factory()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def on_starting(server: Any) -> None:
    """Metrics from every worker: a fresh multiprocess dir before any worker imports prometheus_client."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        path = tempfile.mkdtemp(prefix="netguard-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
        server._netguard_metrics_dir = path


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def on_exit(server: Any) -> None:
    path = getattr(server, "_netguard_metrics_dir", None)
    if path:
        shutil.rmtree(path, ignore_errors=True)
