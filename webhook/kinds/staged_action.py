"""Calico's staged policies: `spec.stagedAction`, shared by the three Staged kinds (staged_*.py beside this).

A staged policy is not enforced: Calico reports what it would do (flow logs) until a team promotes it to its
enforced counterpart, the same spec without `stagedAction` (projectcalico/api pkg/apis/projectcalico/v3/
stagednetworkpolicy.go ConvertStagedPolicyToEnforced, stagedkubernetesnetworkpolicy.go
ConvertStagedKubernetesPolicyToK8SEnforced). `stagedAction` is Set (the default when omitted) or Delete
(policy_common.go StagedAction): Set previews the policy as written; Delete previews removing the enforced
policy of the same name, so its spec means nothing and may be omitted. netguard reads a Set as its counterpart
and a Delete as a policy of no subjects and no rules: only its shape is judged. That the findings are never
denials is the kind's `enforced=False` (webhook/core/decide.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from webhook.core.netpolicy import Rule, Subject
from webhook.core.shape import ShapeError, expect_mapping, optional_str
from webhook.kinds.kind import Normalizer

SET = "Set"
DELETE = "Delete"
ACTIONS = (SET, DELETE)


def staged_action(obj: Mapping[str, Any]) -> str:
    """spec.stagedAction, Set when omitted (or when the spec is)."""
    if obj.get("spec") is None:
        return SET
    action = optional_str(expect_mapping(obj["spec"], "spec"), "stagedAction", "spec") or SET
    if action not in ACTIONS:
        raise ShapeError("spec.stagedAction", f"must be {' or '.join(ACTIONS)}, got {action!r}")
    return action


def staged(normalizer: Normalizer) -> Normalizer:
    """The normalizer of the staged variant of the kind `normalizer` reads: Set reads the spec as that kind does
    (`stagedAction` is ignored there); Delete checks the spec's shape when there is one and means nothing."""

    def normalize_staged(obj: Mapping[str, Any], namespace: str) -> tuple[tuple[Subject, ...], tuple[Rule, ...]]:
        if staged_action(obj) == SET:
            return normalizer(obj, namespace)
        if obj.get("spec") is not None:
            normalizer(obj, namespace)  # a malformed field is still named
        return (), ()

    return normalize_staged
