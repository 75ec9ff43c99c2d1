"""gunicorn settings, read from netguard's configuration (gunicorn -c python:webhook.serve.gunicorn_conf).

gthread workers with keep-alive: the API server reuses TLS connections, and a worker class that
closes every connection pays a TLS handshake per request (about 10x lower throughput here).
"""

from __future__ import annotations

import gc
import os
import shutil
import ssl
import tempfile
from typing import Any

from webhook import config as _config
from webhook.engine.policies import LAST_GOOD_ENV
from webhook.serve import tls

_settings = _config.load()
_server = _settings.server


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


# Admission (and /healthz, /readyz, /metrics) on server.bind; POST /v1/check on server.check_bind, served by
# its own threads in each worker (webhook/serve/worker.py tells the listeners apart by port).
bind = [_server.bind] + ([_server.check_bind] if _server.check_bind else [])
# SO_REUSEPORT stays off (gunicorn's default: one listening socket, bound by the master, shared by the workers).
# With reuse_port = True gunicorn 27 binds nothing in the master and each worker binds its own sockets after the
# fork (arbiter.spawn_worker -> sock.create_sockets); the kernel then spreads new connections by a hash, and
# `make bench` measured the busiest worker at 52-64 % of the requests instead of the occasional 100 %. But
# tests/server/test_operations.py (the opa_budgeted tests) then failed 2 runs in 3 with a connection reset or
# refused right after /readyz answered, and passed 3 in 3 without it: connections queued on a worker's own
# socket are reset when that socket closes, and none is held while no worker has one. Not enabled until that is
# understood; `bench/admission_bench.py --reuse-port` measures it (docs/performance.md).
reuse_port = False
workers = _server.workers or _cpu_count()
# gthread whose threads get only complete request heads, with time limits for the handshake, the head
# and the body, and a cap on idle connections (see webhook/serve/worker.py).
worker_class = "webhook.serve.worker.ThreadWorker"
threads = _server.threads
keepalive = _server.keepalive_seconds
worker_connections = _server.max_connections
# SIGTERM: the master closes its listening socket and each worker stops accepting, finishes the
# requests it has, answers a request on a kept-alive connection within 2 s with "Connection:
# close", and exits (webhook/serve/worker.py keeps its count of open connections right). Connections
# that arrive meanwhile wait in the backlog and are reset when the workers exit, so new
# connections must already go to other replicas: in Kubernetes the Deployment's preStop sleep
# keeps the pod serving until its endpoint removal has reached kube-proxy and the API servers,
# and only then does the kubelet send SIGTERM. terminationGracePeriodSeconds must cover the sleep
# plus this timeout (deploy/base/deployment.yaml: 10 s + 20 s < 40 s).
graceful_timeout = _server.graceful_timeout_seconds
timeout = 30
certfile = _server.tls_cert
keyfile = _server.tls_key
accesslog = None  # one decision line per request comes from the app, in JSON
errorlog = "-"
loglevel = "warning" if _settings.logging.level == "info" else _settings.logging.level
limit_request_line = 8190
proc_name = "netguard"
# gunicorn 25.1+ opens a control socket in $XDG_RUNTIME_DIR or $HOME/.gunicorn/ by default: an admin
# interface netguard does not use, and a write outside $TMPDIR (the image's root filesystem is read-only).
control_socket_disable = True


def ssl_context(conf: Any, default_ssl_context_factory: Any) -> ssl.SSLContext:
    """TLS 1.2 or newer with AEAD suites only, and a renewed certificate is served without a restart
    (webhook/serve/tls.py).

    The worker calls this for every connection; it returns the cached context, reloaded when the
    certificate or key file changes. With server.client_ca the admission listener's connections get a
    context of their own that verifies client certificates (webhook/serve/worker.py, _ListenerConf).
    """
    return tls.server_context(conf.certfile, conf.keyfile, default_ssl_context_factory)


def on_starting(server: Any) -> None:
    """Metrics from every worker: a fresh multiprocess dir before any worker imports prometheus_client."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        path = tempfile.mkdtemp(prefix="netguard-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
        server._netguard_metrics_dir = path
    # The last good catalog (webhook/engine/policies.py): a private folder (0700) where each worker saves the catalog it
    # compiled, and from which a worker that cannot compile policies_dir at its start builds instead.
    if not os.environ.get(LAST_GOOD_ENV):
        store = tempfile.mkdtemp(prefix="netguard-catalog-")
        os.environ[LAST_GOOD_ENV] = store
        server._netguard_catalog_dir = store


# Cyclic garbage collection in the workers (post_worker_init). The app, the compiled catalog and the imported
# modules are long-lived: gc.freeze() moves them out of the collector's generations, so a full collection no
# longer walks them. A review of a large Cilium policy allocates tens of thousands of containers, which with
# the default threshold (700) triggers dozens of young collections per request and, every few requests, a full
# one that walked everything the worker holds: the p99 of such a review (docs/performance.md). The garbage is the
# same; only how often it is looked for changes (memory: at most a few MB more per worker).
GC_THRESHOLDS = (50_000, 50, 100)


def tune_gc() -> None:
    """Collect, freeze what is there (long-lived), and raise the thresholds; also used by bench/admission_bench."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def post_worker_init(worker: Any) -> None:
    """After the worker loaded the app (policies compiled, evaluators started), before it serves."""
    tune_gc()


def worker_exit(server: Any, worker: Any) -> None:
    """Stop this worker's regorus evaluator processes (they would stop at EOF anyway, a little later)."""
    app = getattr(worker, "wsgi", None)
    extensions = getattr(app, "extensions", {})
    pipeline = extensions.get("netguard")
    if pipeline is not None:
        pipeline.engine.close()
    checker = extensions.get("netguard.check")
    if checker is not None:
        checker.close()


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def on_exit(server: Any) -> None:
    for attribute in ("_netguard_metrics_dir", "_netguard_catalog_dir"):
        path = getattr(server, attribute, None)
        if path:
            shutil.rmtree(path, ignore_errors=True)
