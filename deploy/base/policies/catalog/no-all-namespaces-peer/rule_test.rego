package guardrails.no_all_namespaces_peer_test

import data.guardrails.no_all_namespaces_peer
import rego.v1

params := {"no-all-namespaces-peer": {"shared_services": [{
	"name": "kube-dns", "pod_labels": {"k8s-app": "kube-dns"}, "ports": ["UDP/53", "TCP/53"],
}]}}

pod_req(key, value) := {"key": key, "operator": "In", "values": [value]}

pods_peer(pods, names) := {
	"path": "spec.egress[0].to[0]", "type": "pods",
	"namespaces": {"scope": "all", "names": names, "selector": {"empty": true, "open": true, "requirements": []}},
	"pods": {"empty": count(pods) == 0, "open": count(pods) == 0, "requirements": pods},
	"facts": {"all_namespaces": true, "other_namespaces": true},
}

entity_peer(entity) := {
	"path": "spec.ingress[0].fromEntities[0]", "type": "entity", "entity": entity,
	"namespaces": null, "pods": null,
	"facts": {"all_namespaces": true, "other_namespaces": true},
}

port(protocol, number) := {
	"protocol": protocol, "port": number, "all_ports": false, "span": 1,
	"label": sprintf("%s/%d", [protocol, number]),
}

rule(direction, peers, ports) := {
	"path": sprintf("spec.%s[0]", [direction]), "direction": direction, "action": "allow",
	"effective": true, "matches_nothing": false, "any_peer": false,
	"all_ports": count(ports) == 0, "ports": ports, "icmp": [],
	"ports_label": "some ports", "peers": peers, "facts": {},
}

doc(flavor, rules) := {"policy": {"flavor": flavor, "namespace": "team-a", "rules": rules}, "parameters": params}

test_empty_namespace_selector_is_reported if {
	r := rule("egress", [pods_peer([], [])], [port("TCP", 443)])
	some v in no_all_namespaces_peer.violation with input as doc("kubernetes", [r])
	v.path == "spec.egress[0].to[0]"
	contains(v.msg, "every pod in every namespace, including ones created later")
	contains(v.fix, "kubernetes.io/metadata.name")
}

test_excluded_namespaces_are_named if {
	r := rule("egress", [pods_peer([pod_req("app", "db")], ["kube-system", "monitoring"])], [port("TCP", 5432)])
	some v in no_all_namespaces_peer.violation with input as doc("cilium", [r])
	contains(v.msg, "pods app=db in every namespace except kube-system, monitoring, including ones created later")
	contains(v.fix, "io.kubernetes.pod.namespace")
}

test_ingress_entity_cluster_is_reported if {
	r := rule("ingress", [entity_peer("cluster")], [])
	some v in no_all_namespaces_peer.violation with input as doc("cilium", [r])
	v.path == "spec.ingress[0].fromEntities[0]"
	contains(v.msg, "allows ingress on some ports from entity cluster")
}

test_kube_dns_on_dns_ports_is_exempt if {
	r := rule("egress", [pods_peer([pod_req("k8s-app", "kube-dns")], [])], [port("UDP", 53), port("TCP", 53)])
	count(no_all_namespaces_peer.violation) == 0 with input as doc("kubernetes", [r])
}

test_kube_dns_with_another_port_is_reported if {
	r := rule("egress", [pods_peer([pod_req("k8s-app", "kube-dns")], [])], [port("UDP", 53), port("TCP", 9153)])
	count(no_all_namespaces_peer.violation) == 1 with input as doc("kubernetes", [r])
}

test_kube_dns_on_every_port_is_reported if {
	r := rule("egress", [pods_peer([pod_req("k8s-app", "kube-dns")], [])], [])
	count(no_all_namespaces_peer.violation) == 1 with input as doc("kubernetes", [r])
}

test_kube_dns_not_pinned_is_reported if {
	peer := pods_peer([{"key": "k8s-app", "operator": "In", "values": ["kube-dns", "api"]}], [])
	r := rule("egress", [peer], [port("UDP", 53)])
	count(no_all_namespaces_peer.violation) == 1 with input as doc("kubernetes", [r])
}

test_no_shared_services_configured_reports_dns if {
	r := rule("egress", [pods_peer([pod_req("k8s-app", "kube-dns")], [])], [port("UDP", 53)])
	inp := object.union(doc("kubernetes", [r]), {"parameters": {"no-all-namespaces-peer": {"shared_services": []}}})
	count(no_all_namespaces_peer.violation) == 1 with input as inp
}

test_own_namespace_peer_is_not_reported if {
	peer := object.union(pods_peer([], []), {
		"namespaces": {"scope": "own", "names": [], "selector": {"requirements": []}},
		"facts": {"all_namespaces": false},
	})
	count(no_all_namespaces_peer.violation) == 0 with input as doc("cilium", [rule("egress", [peer], [])])
}

test_deny_rule_is_not_reported if {
	r := object.union(rule("ingress", [entity_peer("cluster")], []), {"action": "deny"})
	count(no_all_namespaces_peer.violation) == 0 with input as doc("cilium", [r])
}

test_ineffective_rule_is_not_reported if {
	r := object.union(rule("egress", [pods_peer([], [])], []), {"effective": false})
	count(no_all_namespaces_peer.violation) == 0 with input as doc("kubernetes", [r])
}

test_cilium_namespace_label_metadata_name_exists_is_reported if {
	peer := object.union(pods_peer([], []), {
		"namespaces": {"scope": "selected", "names": [], "selector": {"requirements": [{
			"key": "io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name", "operator": "Exists", "values": [],
		}]}},
		"facts": {"all_namespaces": false},
	})
	count(no_all_namespaces_peer.violation) == 1 with input as doc("cilium", [rule("egress", [peer], [port("TCP", 443)])])
}

test_cilium_namespace_label_selection_is_not_reported if {
	peer := object.union(pods_peer([], []), {
		"namespaces": {"scope": "selected", "names": [], "selector": {"requirements": [
			pod_req("io.cilium.k8s.namespace.labels.team", "payments"),
		]}},
		"facts": {"all_namespaces": false},
	})
	count(no_all_namespaces_peer.violation) == 0 with input as doc("cilium", [rule("egress", [peer], [port("TCP", 443)])])
}

test_kube_dns_fix_names_its_ports if {
	r := rule("egress", [pods_peer([pod_req("k8s-app", "kube-dns")], [])], [port("TCP", 9153)])
	some v in no_all_namespaces_peer.violation with input as doc("kubernetes", [r])
	contains(v.fix, "kube-dns ports (UDP/53, TCP/53)")
}

test_the_fix_of_a_network_policy_api_kind_names_its_fields if {
	peer := {"path": "spec.ingress[0].from[0].namespaces", "type": "pods", "facts": {"all_namespaces": true},
		"namespaces": {"scope": "all", "names": [], "selector": {"requirements": []}}, "pods": {"requirements": []}}
	inp := {"policy": {"flavor": "kubernetes", "tier": "Admin", "namespace": "", "rules": [{
		"path": "spec.ingress[0]", "direction": "ingress", "action": "allow", "effective": true,
		"matches_nothing": false, "all_ports": true, "ports": [], "icmp": [], "ports_label": "every port",
		"peers": [peer],
	}]}, "parameters": params}
	some v in no_all_namespaces_peer.violation with input as inp
	startswith(v.fix, "name the namespaces: namespaces.matchLabels")
}
