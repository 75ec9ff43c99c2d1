"""The webhook's HTTP contract, checked against a real gunicorn + TLS process on loopback.

What the API server relies on: an AdmissionReview back for every readable call (uid echoed,
deny text that names the rule, field and fix; warnings and audit annotations within limits),
a short JSON 4xx for a broken call and never a 500, a deterministic idempotent JSON Patch from
/mutate, keep-alive, TLS 1.2+ with a certificate for the name it dials, and one decision log
line per request that never carries the object.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import socket
import ssl
import uuid
import warnings
from typing import Any

import jsonpatch
import pytest
import yaml

from webhook.core.reviews import make_review

from .conftest import GUARDRAILS, REPO_ROOT, Server

pytestmark = pytest.mark.timeout(90)

SAMPLES = REPO_ROOT / "policies"
ALLOW_ALL, INTERNET = GUARDRAILS
ANNOTATION_VIOLATIONS = "netguard.io/violations"
ANNOTATION_REVISION = "netguard.io/policy-revision"


def _sample(relative: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((SAMPLES / relative).read_text(encoding="utf-8"))
    return doc


def allow_all_egress(name: str = "allow-all-egress", labels: dict[str, str] | None = None) -> dict[str, Any]:
    """`egress: [{}]`: every destination on every port."""
    meta: dict[str, Any] = {"name": name, "namespace": "team-a"}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": meta,
            "spec": {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{}]}}


def named_destinations() -> dict[str, Any]:
    return _sample("no-allow-all-egress/samples/good/k8s-named-destinations.yaml")


def config_map() -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "team-a"},
            "data": {"egress": "[{}]"}}


def _response(review: dict[str, Any], uid: str) -> dict[str, Any]:
    assert review["apiVersion"] == "admission.k8s.io/v1"
    assert review["kind"] == "AdmissionReview"
    response: dict[str, Any] = review["response"]
    assert response["uid"] == uid
    return response


def _decode_patch(response: dict[str, Any]) -> list[dict[str, Any]]:
    assert response["allowed"] is True
    assert response["patchType"] == "JSONPatch"
    patch: list[dict[str, Any]] = json.loads(base64.b64decode(response["patch"], validate=True))
    assert isinstance(patch, list) and patch
    return patch


def _revision(server: Server) -> str:
    reply = server.get("/readyz")
    assert reply.status == 200
    revision: str = reply.json()["policy_revision"]
    return revision


# --- validate: verdicts ------------------------------------------------------------------------


def test_an_allow_all_egress_rule_is_denied_with_rule_field_and_fix(server: Server) -> None:
    uid = str(uuid.uuid4())
    response = _response(server.review("/validate", make_review(allow_all_egress(), uid=uid)), uid)
    assert response["allowed"] is False
    status = response["status"]
    assert status["code"] == 403
    assert f"[{ALLOW_ALL}] spec.egress[0]" in status["message"]
    assert "Fix:" in status["message"]
    assert _revision(server) in status["message"]


def test_a_policy_with_named_destinations_and_ports_is_allowed_without_status_or_warnings(
        server: Server) -> None:
    uid = str(uuid.uuid4())
    response = _response(server.review("/validate", make_review(named_destinations(), uid=uid)), uid)
    assert response["allowed"] is True
    assert "status" not in response
    assert "warnings" not in response
    assert "patch" not in response


def test_a_rule_in_warn_mode_allows_with_a_warning_and_an_audit_rule_only_annotates(
        warn_server: Server) -> None:
    uid = str(uuid.uuid4())
    response = _response(warn_server.review("/validate", make_review(allow_all_egress(), uid=uid)), uid)
    assert response["allowed"] is True
    assert "status" not in response
    warned = response["warnings"]
    assert any(ALLOW_ALL in w and "spec.egress[0]" in w for w in warned), warned
    assert all(len(w) <= 256 and "\n" not in w for w in warned), warned
    assert not any(INTERNET in w for w in warned), "an audit-mode finding must not become a warning"
    violations = json.loads(response["auditAnnotations"]["violations"])
    modes = {v["rule"]: v["mode"] for v in violations}
    assert modes == {ALLOW_ALL: "warn", INTERNET: "audit"}
    assert response["auditAnnotations"]["policy-revision"] == _revision(warn_server)


def test_an_audit_only_finding_allows_without_warnings(warn_server: Server) -> None:
    internet = _sample("no-internet-egress-without-ports/samples/bad/k8s-ipblock-any.yaml")
    uid = str(uuid.uuid4())
    response = _response(warn_server.review("/validate", make_review(internet, uid=uid)), uid)
    assert response["allowed"] is True
    assert "warnings" not in response
    violations = json.loads(response["auditAnnotations"]["violations"])
    assert [(v["rule"], v["mode"]) for v in violations] == [(INTERNET, "audit")]


def test_dry_run_turns_every_enforced_rule_into_a_warning(dry_run_server: Server) -> None:
    uid = str(uuid.uuid4())
    response = _response(dry_run_server.review("/validate", make_review(allow_all_egress(), uid=uid)), uid)
    assert response["allowed"] is True
    assert "status" not in response
    warned = response["warnings"]
    for rule in (ALLOW_ALL, INTERNET):
        assert any(f"[{rule}] spec.egress[0]" in w for w in warned), warned
    assert all(len(w) <= 256 for w in warned)
    violations = json.loads(response["auditAnnotations"]["violations"])
    assert {(v["rule"], v["mode"], v["reason"]) for v in violations} == {
        (ALLOW_ALL, "warn", "dry-run"), (INTERNET, "warn", "dry-run")}


def test_delete_is_allowed_because_the_guardrails_apply_to_create_and_update(server: Server) -> None:
    uid = str(uuid.uuid4())
    review = make_review(None, operation="DELETE", old=allow_all_egress(), uid=uid)
    assert review["request"]["object"] is None
    response = _response(server.review("/validate", review), uid)
    assert response["allowed"] is True
    assert "status" not in response


def test_an_update_is_evaluated_on_the_new_object_not_the_old_one(server: Server) -> None:
    uid = str(uuid.uuid4())
    fixed = make_review(named_destinations(), operation="UPDATE", old=allow_all_egress("web-to-db"), uid=uid)
    response = _response(server.review("/validate", fixed), uid)
    assert response["allowed"] is True, response

    uid = str(uuid.uuid4())
    broken = make_review(allow_all_egress("web-to-db"), operation="UPDATE", old=named_destinations(), uid=uid)
    response = _response(server.review("/validate", broken), uid)
    assert response["allowed"] is False
    assert f"[{ALLOW_ALL}] spec.egress[0]" in response["status"]["message"]


@pytest.mark.parametrize("path", ["/validate", "/mutate"])
def test_an_unguarded_kind_is_allowed_without_a_patch(server: Server, path: str) -> None:
    uid = str(uuid.uuid4())
    review = make_review(config_map(), uid=uid)
    assert review["request"]["kind"] == {"group": "", "version": "v1", "kind": "ConfigMap"}
    response = _response(server.review(path, review), uid)
    assert response["allowed"] is True
    assert "patch" not in response and "patchType" not in response
    assert "status" not in response


def test_connect_is_allowed(server: Server) -> None:
    uid = str(uuid.uuid4())
    response = _response(server.review("/validate", make_review(allow_all_egress(), operation="CONNECT",
                                                                uid=uid)), uid)
    assert response["allowed"] is True
    assert "status" not in response


def _skipped_reviews() -> list[Any]:
    excluded = allow_all_egress()
    excluded["metadata"]["namespace"] = "kube-system"
    return [
        pytest.param(make_review(config_map()), id="unguarded kind"),
        pytest.param(make_review(allow_all_egress(), operation="CONNECT"), id="CONNECT"),
        pytest.param(make_review(excluded), id="excluded namespace"),
    ]


@pytest.mark.parametrize("review", _skipped_reviews())
def test_a_skipped_request_carries_no_warning(server: Server, review: dict[str, Any]) -> None:
    response = server.review("/validate", review)["response"]
    assert response["allowed"] is True
    assert "warnings" not in response, response["warnings"]


def test_an_object_of_the_wrong_shape_is_a_well_formed_denial_naming_the_field(server: Server) -> None:
    obj = allow_all_egress()
    obj["spec"]["egress"] = "all"
    uid = str(uuid.uuid4())
    response = _response(server.review("/validate", make_review(obj, uid=uid)), uid)
    assert response["allowed"] is False
    assert response["status"]["code"] == 403
    assert "spec.egress" in response["status"]["message"]


# --- mutate ----------------------------------------------------------------------------------


def test_mutate_annotates_a_violating_object_with_a_json_patch(server: Server) -> None:
    obj = allow_all_egress()
    uid = str(uuid.uuid4())
    response = _response(server.review("/mutate", make_review(obj, uid=uid)), uid)
    patch = _decode_patch(response)
    assert all(op["path"].startswith("/metadata/annotations") for op in patch), patch
    patched = jsonpatch.apply_patch(obj, patch)
    annotations = patched["metadata"]["annotations"]
    assert annotations[ANNOTATION_REVISION] == _revision(server)
    violations = json.loads(annotations[ANNOTATION_VIOLATIONS])
    assert isinstance(violations, list)
    assert all(set(v) == {"rule", "path", "mode"} for v in violations), violations
    assert {"rule": ALLOW_ALL, "path": "spec.egress[0]", "mode": "enforce"} in violations
    # everything but the annotations is untouched
    del patched["metadata"]["annotations"]
    assert patched == obj


def test_mutate_keeps_existing_annotations_and_escapes_the_annotation_keys(server: Server) -> None:
    obj = allow_all_egress()
    obj["metadata"]["annotations"] = {"team": "a", "owner/contact": "alice"}
    response = server.review("/mutate", make_review(obj, uid="annotated"))["response"]
    patch = _decode_patch(response)
    assert all(op["op"] in ("add", "replace") for op in patch), patch
    assert {op["path"] for op in patch} == {"/metadata/annotations/netguard.io~1violations",
                                            "/metadata/annotations/netguard.io~1policy-revision",
                                            "/metadata/annotations/netguard.io~1last-modified-by"}
    annotations = jsonpatch.apply_patch(obj, patch)["metadata"]["annotations"]
    assert annotations["team"] == "a" and annotations["owner/contact"] == "alice"
    assert annotations[ANNOTATION_REVISION] == _revision(server)
    assert annotations["netguard.io/last-modified-by"] == "alice"  # the requester, for the audit's attribution


def test_mutate_is_idempotent_on_reinvocation(server: Server) -> None:
    obj = allow_all_egress()
    first = server.review("/mutate", make_review(obj, uid="first"))["response"]
    patched = jsonpatch.apply_patch(obj, _decode_patch(first))
    again = _response(server.review("/mutate", make_review(patched, uid="again")), "again")
    assert again["allowed"] is True
    assert "patch" not in again and "patchType" not in again


def test_mutate_on_delete_returns_no_patch(server: Server) -> None:
    uid = str(uuid.uuid4())
    response = _response(server.review("/mutate", make_review(None, operation="DELETE",
                                                              old=allow_all_egress(), uid=uid)), uid)
    assert response["allowed"] is True
    assert "patch" not in response and "patchType" not in response


def test_mutate_is_deterministic(server: Server) -> None:
    review = make_review(allow_all_egress(), uid=str(uuid.uuid4()))
    first = server.review("/mutate", copy.deepcopy(review))["response"]
    second = server.review("/mutate", copy.deepcopy(review))["response"]
    assert first["patch"] == second["patch"]
    assert first == second


# --- malformed calls ---------------------------------------------------------------------------


def _valid_review() -> dict[str, Any]:
    return make_review(allow_all_egress(), uid=str(uuid.uuid4()))


def _without(key: str) -> dict[str, Any]:
    doc = _valid_review()
    del doc[key]
    return doc


def _with_request(**changes: Any) -> dict[str, Any]:
    doc = _valid_review()
    for key, value in changes.items():
        if value is _DELETE:
            del doc["request"][key]
        else:
            doc["request"][key] = value
    return doc


_DELETE = object()
DEEP = 10_000

MALFORMED: list[tuple[str, bytes, str, int]] = [
    ("text/plain content type", json.dumps(_valid_review()).encode(), "text/plain", 415),
    ("not JSON", b"{this is not json", "application/json", 400),
    ("a JSON array", b"[]", "application/json", 400),
    ("a JSON string", b'"AdmissionReview"', "application/json", 400),
    ("kind not AdmissionReview", json.dumps({**_valid_review(), "kind": "Pod"}).encode(), "application/json", 400),
    ("apiVersion v1beta1", json.dumps({**_valid_review(), "apiVersion": "admission.k8s.io/v1beta1"}).encode(),
     "application/json", 400),
    ("request missing", json.dumps(_without("request")).encode(), "application/json", 400),
    ("request null", json.dumps({**_valid_review(), "request": None}).encode(), "application/json", 400),
    ("uid missing", json.dumps(_with_request(uid=_DELETE)).encode(), "application/json", 400),
    ("uid empty", json.dumps(_with_request(uid="")).encode(), "application/json", 400),
    ("uid not a string", json.dumps(_with_request(uid=42)).encode(), "application/json", 400),
    ("operation unknown", json.dumps(_with_request(operation="PATCH")).encode(), "application/json", 400),
    ("object not an object", json.dumps(_with_request(object=[1, 2])).encode(), "application/json", 400),
    ("not UTF-8", b"\xff\xfe{\x00\"\x00a\x00\"\x00}\x00", "application/json", 400),
    ("JSON nested 10,000 levels", b'{"a":' * DEEP + b"1" + b"}" * DEEP, "application/json", 400),
    ("JSON nested 100 levels", b"[" * 100 + b"]" * 100, "application/json", 400),
    ("empty body", b"", "application/json", 400),
]


@pytest.mark.parametrize("path", ["/validate", "/mutate"])
@pytest.mark.parametrize(("body", "content_type", "expected"),
                         [pytest.param(b, ct, st, id=name) for name, b, ct, st in MALFORMED])
def test_a_malformed_call_gets_a_short_json_error_with_the_documented_status(
        server: Server, path: str, body: bytes, content_type: str, expected: int) -> None:
    request_id = f"malformed-{uuid.uuid4().hex[:12]}"
    reply = server.request("POST", path, body=body,
                           headers={"Content-Type": content_type, "X-Request-Id": request_id})
    assert reply.status == expected, reply.body[:300]
    logged = [line for line in server.log_lines() if line.get("request_id") == request_id]
    assert [line["event"] for line in logged] == ["admission.bad_request"], logged
    assert reply.headers.get("content-type", "").startswith("application/json")
    assert len(reply.body) < 512, reply.body[:600]
    error = reply.json()
    assert set(error) == {"error", "status"}
    assert error["status"] == expected
    assert isinstance(error["error"], str) and error["error"]
    assert "Traceback" not in error["error"]


@pytest.mark.parametrize(("method", "path", "expected"), [
    ("GET", "/validate", 405), ("PUT", "/mutate", 405), ("POST", "/admit", 404)])
def test_a_wrong_method_or_path_gets_a_short_json_error(server: Server, method: str, path: str,
                                                        expected: int) -> None:
    reply = server.request(method, path, body=b"{}", headers={"Content-Type": "application/json"})
    assert reply.status == expected
    assert reply.headers.get("content-type", "").startswith("application/json")
    assert reply.json() == {"error": reply.json()["error"], "status": expected}


@pytest.mark.parametrize("path", ["/validate", "/mutate"])
def test_a_body_over_3_mib_is_refused_with_413(server: Server, path: str) -> None:
    review = _valid_review()
    review["request"]["object"]["metadata"]["annotations"] = {"padding": "x" * (3 * 1024 * 1024)}
    body = json.dumps(review).encode()
    assert len(body) > 3 * 1024 * 1024
    reply = server.post_oversized(path, body)
    assert reply.status == 413, reply.body[:300]
    assert reply.headers.get("content-type", "").startswith("application/json")
    assert len(reply.body) < 512
    assert reply.json() == {"error": reply.json()["error"], "status": 413}
    assert isinstance(reply.json()["error"], str)


@pytest.mark.parametrize("path", ["/validate", "/mutate"])
def test_an_integer_of_5000_digits_is_a_400_not_a_500(server: Server, path: str) -> None:
    body = json.dumps(_valid_review()).replace('"podSelector": {}', '"podSelector": {}, "x": ' + "9" * 5000)
    reply = server.post(path, body.encode())
    assert reply.status == 400, reply.body[:200]


def test_a_lone_surrogate_in_the_object_is_not_an_engine_error(server: Server) -> None:
    review = make_review(allow_all_egress(labels={"app": "MARKER"}), uid="surrogate")
    body = json.dumps(review).replace("MARKER", "\\ud800").encode()
    reply = server.post("/validate", body)
    assert reply.status in (200, 400)
    assert b"engine-error" not in reply.body, reply.body[:400]


def test_the_server_still_answers_after_the_malformed_calls(server: Server) -> None:
    assert server.get("/healthz").status == 200
    uid = str(uuid.uuid4())
    response = _response(server.review("/validate", make_review(allow_all_egress(), uid=uid)), uid)
    assert response["allowed"] is False


# --- health, readiness, metrics ------------------------------------------------------------------


def test_healthz_answers_200(server: Server) -> None:
    reply = server.get("/healthz")
    assert reply.status == 200
    assert reply.json() == {"status": "ok"}


def test_readyz_answers_200_with_the_policy_revision(server: Server) -> None:
    reply = server.get("/readyz")
    assert reply.status == 200
    ready = reply.json()
    assert ready["status"] == "ready"
    assert isinstance(ready["policy_revision"], str) and ready["policy_revision"]
    assert ready["guardrails"] == len(GUARDRAILS)


def test_metrics_count_requests_by_verdict_and_violations_by_rule(server: Server) -> None:
    server.review("/validate", make_review(allow_all_egress(), uid=str(uuid.uuid4())))
    reply = server.get("/metrics")
    assert reply.status == 200
    assert reply.headers["content-type"].startswith("text/plain")
    text = reply.body.decode()
    requests = [line for line in text.splitlines() if line.startswith("netguard_admission_requests_total{")]
    denied = [line for line in requests
              if 'verdict="denied"' in line and 'endpoint="validate"' in line and 'kind="NetworkPolicy"' in line]
    assert denied, requests
    assert float(denied[0].rsplit(" ", 1)[1]) >= 1
    violations = [line for line in text.splitlines()
                  if line.startswith("netguard_violations_total{") and f'rule="{ALLOW_ALL}"' in line]
    assert violations, text[-2000:]
    assert float(violations[0].rsplit(" ", 1)[1]) >= 1


def test_metrics_count_bad_calls_by_status(server: Server) -> None:
    assert server.post("/validate", b"[]").status == 400
    text = server.get("/metrics").body.decode()
    bad = [line for line in text.splitlines()
           if line.startswith("netguard_bad_requests_total{") and 'status="400"' in line]
    assert bad and float(bad[0].rsplit(" ", 1)[1]) >= 1, text[-2000:]


# --- connections and TLS -------------------------------------------------------------------------


def test_several_requests_share_one_keep_alive_connection(server: Server) -> None:
    conn = server.connection()
    try:
        sockets = []
        for i in range(5):
            uid = f"keep-alive-{i}"
            conn.request("POST", "/validate", body=json.dumps(make_review(allow_all_egress(), uid=uid)),
                         headers={"Content-Type": "application/json"})
            with conn.getresponse() as resp:
                body = resp.read()
                assert resp.status == 200
                assert not resp.will_close
            assert json.loads(body)["response"]["uid"] == uid
            assert conn.sock is not None
            sockets.append(conn.sock)
        assert all(s is sockets[0] for s in sockets), "the client had to reconnect"
    finally:
        conn.close()


def test_the_certificate_is_checked_against_the_host_name(server: Server) -> None:
    context = server.ssl_context()
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw, \
            pytest.raises(ssl.SSLCertVerificationError, match=r"wrong\.example"):
        context.wrap_socket(raw, server_hostname="wrong.example")
    # the same CA and the name in the certificate do verify
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname="localhost") as tls:
        assert tls.version() in ("TLSv1.2", "TLSv1.3")


def test_a_client_limited_to_tls_1_1_is_refused(server: Server) -> None:
    try:
        context = server.ssl_context()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # TLS 1.1 is deprecated: that is the point
            context.minimum_version = ssl.TLSVersion.TLSv1_1
            context.maximum_version = ssl.TLSVersion.TLSv1_1
        context.set_ciphers("DEFAULT:@SECLEVEL=0")  # let this client really offer TLS 1.1
    except (ValueError, ssl.SSLError) as exc:
        pytest.skip(f"the local OpenSSL cannot build a TLS 1.1 client context: {exc}")
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw, \
            pytest.raises(ssl.SSLError) as excinfo:
        context.wrap_socket(raw, server_hostname="localhost").close()
    error = str(excinfo.value)
    if "NO_PROTOCOLS_AVAILABLE" in error.upper().replace(" ", "_"):
        pytest.skip(f"the local OpenSSL refuses TLS 1.1 on the client side: {error}")
    # the server answered the TLS 1.1 hello with a protocol_version alert
    assert re.search(r"PROTOCOL_VERSION|UNSUPPORTED_PROTOCOL|WRONG_VERSION", error, re.I), error


# --- decision log --------------------------------------------------------------------------------


def test_a_denied_request_is_logged_once_with_its_decision_and_without_the_object(server: Server) -> None:
    uid = f"log-{uuid.uuid4()}"
    secret = f"label-value-{uuid.uuid4().hex}"
    review = make_review(allow_all_egress("logged-policy", labels={"secret": secret}), uid=uid,
                         username="bob", groups=("team-a", "system:authenticated"))
    response = _response(server.review("/validate", review), uid)
    assert response["allowed"] is False

    lines = server.wait_for_log(lambda line: line.get("uid") == uid)
    decisions = [line for line in lines if line.get("event") == "admission.decision"]
    assert len(decisions) == 1, lines
    entry = decisions[0]
    assert entry["operation"] == "CREATE"
    assert entry["kind"] == "NetworkPolicy"
    assert entry["namespace"] == "team-a"
    assert entry["name"] == "logged-policy"
    assert entry["user"] == "bob"
    assert entry["groups"] == ["team-a", "system:authenticated"]
    assert entry["dry_run"] is False
    assert entry["verdict"] == "denied"
    assert ALLOW_ALL in entry["rules"]
    assert isinstance(entry["latency_ms"], (int, float)) and entry["latency_ms"] >= 0
    assert entry["policy_revision"] == _revision(server)
    assert secret not in server.log_text()


def test_a_bad_call_is_logged_without_its_body(server: Server) -> None:
    secret = f"label-value-{uuid.uuid4().hex}"
    review = make_review(allow_all_egress(labels={"secret": secret}))
    review["request"]["uid"] = ""
    reply = server.post_json("/validate", review)
    assert reply.status == 400
    assert secret.encode() not in reply.body
    assert server.wait_for_log(lambda line: line.get("event") == "admission.bad_request"
                               and "uid" in str(line.get("error")))
    assert secret not in server.log_text()


@pytest.mark.parametrize("field", ["kind", "apiVersion", "request.operation"])
def test_a_bad_call_does_not_echo_a_huge_client_value(server: Server, field: str) -> None:
    review = _valid_review()
    if field == "request.operation":
        review["request"]["operation"] = "x" * 100_000
    else:
        review[field] = "x" * 100_000
    reply = server.post_json("/validate", review)
    assert reply.status == 400
    assert len(reply.body) < 512, f"{len(reply.body)} bytes of error body"


def test_a_rejected_method_is_logged_with_its_own_request_id(server: Server) -> None:
    request_id = f"req-{uuid.uuid4().hex[:12]}"
    reply = server.request("GET", "/validate", headers={"X-Request-Id": request_id})
    assert reply.status == 405
    lines = server.wait_for_log(lambda line: line.get("event") == "admission.bad_request"
                                and line.get("status") == 405)
    assert lines
    assert lines[-1].get("request_id") == request_id, lines[-1]


def test_the_log_file_is_json_lines(server: Server) -> None:
    lines = server.log_lines()
    assert any(line.get("event") == "admission.decision" for line in lines)
    assert all("timestamp" in line and "level" in line for line in lines)

