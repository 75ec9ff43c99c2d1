"""POST /v1/check on the real server: the same report as `netguard check --format json`."""

from __future__ import annotations

import json

from .conftest import Server

ALLOW_ALL = """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-all, namespace: team-a}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress:
    - {}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: fine}
spec:
  podSelector: {}
  policyTypes: [Ingress]
"""


def test_a_yaml_body_with_several_documents_is_checked(server: Server) -> None:
    reply = server.post("/v1/check?namespace=team-z", ALLOW_ALL.encode(), content_type="application/yaml")
    assert reply.status == 200
    report = reply.json()
    assert report["summary"]["policies"] == 2 and report["summary"]["exit_code"] == 1
    first, second = report["results"]
    assert first["verdict"] == "denied" and first["findings"][0]["line"] == 8
    assert second["namespace"] == "team-z" and second["verdict"] == "allowed"


def test_a_json_body_is_accepted(server: Server) -> None:
    body = json.dumps({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                       "metadata": {"name": "x", "namespace": "a"}, "spec": {"podSelector": {}}})
    reply = server.post("/v1/check", body.encode())
    assert reply.status == 200 and reply.json()["summary"]["exit_code"] == 0


def test_the_requester_can_be_given(server: Server) -> None:
    reply = server.post("/v1/check?user=root&group=system%3Amasters", ALLOW_ALL.encode(), content_type="text/yaml")
    assert reply.json()["results"][0]["verdict"] == "denied"  # identity does not excuse allow-all


def test_broken_input_is_reported_in_the_report_not_as_a_server_error(server: Server) -> None:
    reply = server.post("/v1/check", b"kind: [unclosed\n", content_type="application/yaml")
    assert reply.status == 200
    report = reply.json()
    assert report["summary"]["exit_code"] == 2 and report["errors"][0]["source"] == "<request>"


def test_wrong_media_type_and_oversized_bodies_are_refused(server: Server) -> None:
    assert server.post("/v1/check", b"x", content_type="application/xml").status == 415
    assert server.post_oversized("/v1/check", b"a" * (3 * 1024 * 1024 + 10), content_type="text/yaml").status == 413
    assert server.post("/v1/check", b"\xff\xfe", content_type="text/yaml").status == 400
