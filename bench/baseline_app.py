"""The bare Flask app netguard is measured against (../shared/notes/measurements.md).

It does the least an admission webhook can do: read the body, parse the AdmissionReview JSON,
and answer `allowed: true` with the request's uid. No validation, no policy, no logging, no
metrics. Whatever netguard costs above this app, under the same gunicorn settings and the same
load, is netguard's own work (strict decoding, normalization, Rego evaluation, decision log,
metrics).

Served by admission_bench.py as `gunicorn 'baseline_app:create_app()'` on POST /validate. With
BENCH_COUNTS_DIR set, each worker keeps its count of answered reviews in `<dir>/<pid>` (8 bytes, mmap), so the
benchmark can tell how requests spread over the workers (netguard's own count comes from its metrics files).
"""

from __future__ import annotations

import json
import mmap
import os
import struct
import threading

from flask import Flask, Response, request

API_VERSION = "admission.k8s.io/v1"
KIND = "AdmissionReview"


def _json(body: object, status: int = 200) -> Response:
    return Response(json.dumps(body, separators=(",", ":")), status=status, mimetype="application/json")


class _Count:
    """This worker's count of answered reviews in `<BENCH_COUNTS_DIR>/<pid>` (opened in the worker, at first use)."""

    def __init__(self, directory: str | None) -> None:
        self.directory = directory
        self.lock = threading.Lock()
        self.pid = 0
        self.n = 0
        self.map: mmap.mmap | None = None

    def __call__(self) -> None:
        if not self.directory:
            return
        with self.lock:
            if self.pid != os.getpid() or self.map is None:
                with open(os.path.join(self.directory, str(os.getpid())), "w+b") as f:
                    f.write(b"\0" * 8)
                    f.flush()
                    self.map = mmap.mmap(f.fileno(), 8)
                self.pid, self.n = os.getpid(), 0
            self.n += 1
            struct.pack_into("<Q", self.map, 0, self.n)


def create_app() -> Flask:
    """App factory (gunicorn: `baseline_app:create_app()`)."""
    app = Flask("baseline")
    count = _Count(os.environ.get("BENCH_COUNTS_DIR"))

    @app.post("/validate")
    def validate() -> Response:
        try:
            review = json.loads(request.get_data(cache=False))
            uid = review["request"]["uid"]
        except (ValueError, TypeError, KeyError):
            return _json({"error": "not an AdmissionReview", "status": 400}, 400)
        count()
        return _json({"apiVersion": API_VERSION, "kind": KIND, "response": {"uid": uid, "allowed": True}})

    @app.get("/healthz")
    def healthz() -> Response:
        return _json({"status": "ok"})

    return app
