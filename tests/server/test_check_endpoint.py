"""POST /v1/check on the real server: the same report as `netguard check --format json`."""

from __future__ import annotations

import json

import pytest

from .conftest import Server


@pytest.fixture
def check(server: Server) -> Server:
    """POST /v1/check is served on its own listener (server.check_bind)."""
    return server.check_listener()

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


def test_a_yaml_body_with_several_documents_is_checked(check: Server) -> None:
    reply = check.post("/v1/check?namespace=team-z", ALLOW_ALL.encode(), content_type="application/yaml")
    assert reply.status == 200
    report = reply.json()
    assert report["summary"]["policies"] == 2 and report["summary"]["exit_code"] == 1
    first, second = report["results"]
    assert first["verdict"] == "denied" and first["findings"][0]["line"] == 8
    assert second["namespace"] == "team-z" and second["verdict"] == "allowed"


def test_a_json_body_is_accepted(check: Server) -> None:
    body = json.dumps({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                       "metadata": {"name": "x", "namespace": "a"}, "spec": {"podSelector": {}}})
    reply = check.post("/v1/check", body.encode())
    assert reply.status == 200 and reply.json()["summary"]["exit_code"] == 0


def test_the_requester_can_be_given(check: Server) -> None:
    reply = check.post("/v1/check?user=root&group=system%3Amasters", ALLOW_ALL.encode(), content_type="text/yaml")
    assert reply.json()["results"][0]["verdict"] == "denied"  # identity does not excuse allow-all


def test_broken_input_is_reported_in_the_report_not_as_a_server_error(check: Server) -> None:
    reply = check.post("/v1/check", b"kind: [unclosed\n", content_type="application/yaml")
    assert reply.status == 200
    report = reply.json()
    assert report["summary"]["exit_code"] == 2 and report["errors"][0]["source"] == "<request>"


def test_wrong_media_type_and_oversized_bodies_are_refused(check: Server) -> None:
    assert check.post("/v1/check", b"x", content_type="application/xml").status == 415
    assert check.post_oversized("/v1/check", b"a" * (3 * 1024 * 1024 + 10), content_type="text/yaml").status == 413
    assert check.post("/v1/check", b"\xff\xfe", content_type="text/yaml").status == 400


SUPERSCRIPT_PORT = """\
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: superscript, namespace: team-a}
spec:
  endpointSelector: {}
  egress:
    - toCIDR: [169.254.169.254/32]
      toPorts:
        - ports: [{port: "\u00b2", protocol: TCP}]
"""


def test_a_port_go_would_not_parse_is_an_input_error_not_a_server_error(check: Server) -> None:
    body = (SUPERSCRIPT_PORT + "---\n" + ALLOW_ALL).encode()
    reply = check.post("/v1/check", body, content_type="application/yaml")
    assert reply.status == 200
    report = reply.json()
    assert report["summary"]["exit_code"] == 2
    (error,) = report["errors"]
    assert error["line"] == 9 and "spec.egress[0].toPorts[0].ports[0].port" in error["message"]
    assert [r["verdict"] for r in report["results"]] == ["denied", "allowed"]  # the others were still checked
