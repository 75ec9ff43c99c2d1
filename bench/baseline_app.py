"""The bare Flask app netguard is measured against (../shared/notes/measurements.md).

It does the least an admission webhook can do: read the body, parse the AdmissionReview JSON,
and answer `allowed: true` with the request's uid. No validation, no policy, no logging, no
metrics. Whatever netguard costs above this app, under the same gunicorn settings and the same
load, is netguard's own work (strict decoding, normalization, Rego evaluation, decision log,
metrics).

Served by admission_bench.py as `gunicorn 'baseline_app:create_app()'` on POST /validate.
"""

from __future__ import annotations

import json

from flask import Flask, Response, request

API_VERSION = "admission.k8s.io/v1"
KIND = "AdmissionReview"


def _json(body: object, status: int = 200) -> Response:
    return Response(json.dumps(body, separators=(",", ":")), status=status, mimetype="application/json")


def create_app() -> Flask:
    """App factory (gunicorn: `baseline_app:create_app()`)."""
    app = Flask("baseline")

    @app.post("/validate")
    def validate() -> Response:
        try:
            review = json.loads(request.get_data(cache=False))
            uid = review["request"]["uid"]
        except (ValueError, TypeError, KeyError):
            return _json({"error": "not an AdmissionReview", "status": 400}, 400)
        return _json({"apiVersion": API_VERSION, "kind": KIND, "response": {"uid": uid, "allowed": True}})

    @app.get("/healthz")
    def healthz() -> Response:
        return _json({"status": "ok"})

    return app
