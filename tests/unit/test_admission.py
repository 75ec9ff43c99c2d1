"""AdmissionReview decoding (strict, at the edge) and response building."""

from __future__ import annotations

import base64
import json

import pytest

from webhook.core.admission import (
    MAX_WARNING_CHARS,
    MAX_WARNINGS_TOTAL,
    Response,
    ReviewError,
    build_response,
    decode_json,
    fit_warnings,
    parse_review,
    response_for,
)
from webhook.core.model import AppliedFinding, Decision, Finding, Mode, Operation, Verdict
from webhook.core.reviews import make_review

POLICY = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
          "metadata": {"name": "p", "namespace": "team-a"}, "spec": {"podSelector": {}}}


def test_a_review_built_like_the_api_server_parses_into_typed_fields() -> None:
    req = parse_review(make_review(POLICY, username="bob", groups=["dev"], uid="u-1", dry_run=True))
    assert req.uid == "u-1"
    assert req.operation is Operation.CREATE
    assert req.kind.kind == "NetworkPolicy" and req.kind.group == "networking.k8s.io"
    assert req.user.username == "bob" and req.user.groups == ("dev",)
    assert req.namespace == "team-a" and req.name == "p"
    assert req.dry_run is True
    assert req.subject == POLICY


def test_delete_reviews_take_their_subject_from_old_object() -> None:
    req = parse_review(make_review(None, old=POLICY, operation="DELETE"))
    assert req.object is None
    assert req.subject == POLICY


@pytest.mark.parametrize(("mutation", "fragment"), [
    (lambda d: d.update(kind="Pod"), "kind must be AdmissionReview"),
    (lambda d: d.update(apiVersion="admission.k8s.io/v1beta1"), "apiVersion must be admission.k8s.io/v1"),
    (lambda d: d.pop("request"), "request is missing"),
    (lambda d: d["request"].pop("uid"), "request.uid"),
    (lambda d: d["request"].update(uid=""), "request.uid"),
    (lambda d: d["request"].update(operation="PATCH"), "request.operation"),
    (lambda d: d["request"].update(kind="NetworkPolicy"), "request.kind"),
    (lambda d: d["request"].update(object="text"), "request.object"),
    (lambda d: d["request"]["userInfo"].update(groups="admins"), "groups"),
])
def test_malformed_reviews_are_rejected_with_a_message_naming_the_problem(mutation, fragment) -> None:
    doc = make_review(POLICY)
    mutation(doc)
    with pytest.raises(ReviewError) as err:
        parse_review(doc)
    assert err.value.status == 400
    assert fragment in err.value.message


@pytest.mark.parametrize(("raw", "ctype", "status"), [
    (b"{}", "text/plain", 415),
    (b"{}", None, 415),
    (b"", "application/json", 400),
    (b"{not json", "application/json", 400),
    (b"\xff\xfe\x00", "application/json", 400),
    (b"[" * 5000 + b"]" * 5000, "application/json", 400),
    (b'{"a":' * 100 + b"1" + b"}" * 100, "application/json", 400),
])
def test_broken_bodies_become_http_errors(raw: bytes, ctype: str | None, status: int) -> None:
    with pytest.raises(ReviewError) as err:
        decode_json(raw, ctype)
    assert err.value.status == status


@pytest.mark.parametrize("padding", [0, 200])
def test_the_depth_limit_holds_exactly_whatever_else_the_body_holds(padding: int) -> None:
    """Nesting at the limit passes and one level more fails, for a body with few brackets (the walk is skipped
    only when the bracket count alone proves the limit holds) and one padded with brackets in strings and in
    flat lists (the walk runs and must still count levels, not brackets)."""
    def body(depth: int) -> bytes:
        value: object = 1
        for _ in range(depth - 1):
            value = [value]
        return json.dumps({"pad": ["[{" * padding, *([[]] * padding)], "v": value}).encode()

    assert decode_json(body(64), "application/json", 64)["v"] is not None
    with pytest.raises(ReviewError, match="nested deeper than 64"):
        decode_json(body(65), "application/json", 64)


def test_content_type_parameters_are_accepted() -> None:
    assert decode_json(b'{"a": 1}', "application/json; charset=utf-8") == {"a": 1}


def _finding(rule: str, mode: Mode, path: str = "spec.egress[0]") -> AppliedFinding:
    return AppliedFinding(Finding(rule, path, "allows everything", fix="name the peers"), mode)


def test_denials_list_every_enforced_violation_with_path_and_fix() -> None:
    decision = Decision(Verdict.DENIED, (_finding("a", Mode.ENFORCE), _finding("b", Mode.ENFORCE, "spec.egress[1]"),
                                         _finding("c", Mode.WARN)))
    body = build_response(response_for("uid-9", decision, "rev1"))
    assert body["apiVersion"] == "admission.k8s.io/v1" and body["kind"] == "AdmissionReview"
    resp = body["response"]
    assert resp["uid"] == "uid-9" and resp["allowed"] is False
    assert resp["status"]["code"] == 403
    message = resp["status"]["message"]
    assert "[a] spec.egress[0]: allows everything. Fix: name the peers. (enforce: default)" in message
    assert "[b] spec.egress[1]" in message
    assert "[c]" not in message
    assert resp["warnings"] == ["[c] spec.egress[0]: allows everything (warn: default)"]


def test_audit_findings_only_reach_audit_annotations() -> None:
    decision = Decision(Verdict.AUDITED, (_finding("a", Mode.AUDIT),))
    resp = build_response(response_for("u", decision, "rev1"))["response"]
    assert resp["allowed"] is True
    assert "warnings" not in resp and "status" not in resp
    recorded = json.loads(resp["auditAnnotations"]["violations"])
    assert recorded == [{"mode": "audit", "path": "spec.egress[0]", "reason": "default", "rule": "a"}]


def test_warnings_stay_within_the_api_server_limits() -> None:
    warnings = fit_warnings(["x" * 1000] * 40)
    assert all(len(w) <= MAX_WARNING_CHARS for w in warnings)
    assert sum(len(w) for w in warnings) <= MAX_WARNINGS_TOTAL
    assert "more warning(s) omitted" in warnings[-1]


def test_warnings_are_single_lines() -> None:
    assert fit_warnings(["a\nb"]) == ("a b",)


def test_patches_are_base64_json_patch() -> None:
    patch = [{"op": "add", "path": "/metadata/annotations", "value": {"k": "v"}}]
    resp = build_response(Response(uid="u", allowed=True, patch=patch))["response"]
    assert resp["patchType"] == "JSONPatch"
    assert json.loads(base64.b64decode(resp["patch"])) == patch
