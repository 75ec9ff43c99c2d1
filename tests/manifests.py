"""Manifests several test modules use as they are: a narrow policy every guardrail admits, and allow-all egress."""

WEB_INGRESS = """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web, namespace: team-a}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Ingress]
  ingress:
    - from: [{podSelector: {matchLabels: {app: frontend}}}]
      ports: [{protocol: TCP, port: 8080}]
"""
ALLOW_ALL_EGRESS = """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-all, namespace: team-a}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress: [{}]
"""
