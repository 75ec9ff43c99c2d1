"""The `kind` label of the request counter: bounded, and decided by group and kind together."""

from __future__ import annotations

from webhook import kinds
from webhook.serve.metrics import kind_label


def test_every_guarded_kind_is_labelled_by_its_netguard_name() -> None:
    assert {kind_label(k.group, k.kind) for k in kinds.ALL} == {k.name for k in kinds.ALL}


def test_calicos_networkpolicy_is_not_counted_as_kubernetes() -> None:
    assert kind_label("networking.k8s.io", "NetworkPolicy") == "NetworkPolicy"
    assert kind_label("projectcalico.org", "NetworkPolicy") == "NetworkPolicy.projectcalico.org"


def test_a_known_kind_name_of_another_group_is_other() -> None:
    assert kind_label("example.com", "NetworkPolicy") == "other"
    assert kind_label("crd.antrea.io", "ClusterNetworkPolicy") == "other"  # Antrea's, out of scope
    assert kind_label("", "Pod") == "other"
