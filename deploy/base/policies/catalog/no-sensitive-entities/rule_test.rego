package guardrails.no_sensitive_entities_test

import data.guardrails.no_sensitive_entities
import rego.v1

entity(i, name) := {
	"path": sprintf("spec.egress[0].toEntities[%d]", [i]), "type": "entity", "entity": name, "via": "",
	"facts": {"infrastructure": infrastructure(name)},
}

# What webhook/core/facts.py computes for an entity peer.
infrastructure(name) := [name] if {
	name in {"host", "remote-node", "kube-apiserver", "health", "init", "ingress", "unmanaged"}
} else := []

rule(direction, action, peers) := {
	"path": sprintf("spec.%s[0]", [direction]), "direction": direction, "action": action, "effective": true,
	"matches_nothing": false, "any_peer": false, "all_ports": false, "ports_label": "TCP/443",
	"peers": peers, "facts": {},
}

doc(rules, platform) := {
	"requester": {"username": "alice", "platform": platform, "reason": "not in the platform users or groups"},
	"parameters": {"no-sensitive-entities": {"entities": ["host", "remote-node", "kube-apiserver", "health", "init"]}},
	"policy": {"flavor": "cilium", "rules": rules},
}

test_kube_apiserver_is_reported if {
	vs := no_sensitive_entities.violation with input as doc([rule("egress", "allow", [entity(0, "kube-apiserver")])], false)
	count(vs) == 1
	some v in vs
	v.path == "spec.egress[0].toEntities[0]"
	contains(v.msg, "entity kube-apiserver, the Kubernetes API server")
	contains(v.msg, "alice: not in the platform users or groups")
}

test_each_sensitive_entity_is_reported_separately if {
	r := rule("egress", "allow", [entity(0, "host"), entity(1, "world"), entity(2, "remote-node")])
	vs := no_sensitive_entities.violation with input as doc([r], false)
	{v.path | some v in vs} == {"spec.egress[0].toEntities[0]", "spec.egress[0].toEntities[2]"}
}

test_entities_parameter_is_used if {
	inp := object.union(doc([rule("egress", "allow", [entity(0, "host")])], false), {"parameters": {"no-sensitive-entities": {"entities": ["kube-apiserver"]}}})
	count(no_sensitive_entities.violation) == 0 with input as inp
}

test_platform_is_not_reported if {
	count(no_sensitive_entities.violation) == 0 with input as doc([rule("egress", "allow", [entity(0, "host")])], true)
}

test_ingress_and_deny_are_not_reported if {
	rules := [rule("ingress", "allow", [entity(0, "host")]), rule("egress", "deny", [entity(0, "kube-apiserver")])]
	count(no_sensitive_entities.violation) == 0 with input as doc(rules, false)
}

test_nodes_are_the_host_and_remote_node_identities if {
	nodes := {"path": "spec.egress[0].toNodes[0]", "type": "nodes", "via": "", "description": "every node",
		"facts": {"infrastructure": ["host", "remote-node"]}}
	vs := no_sensitive_entities.violation with input as doc([rule("egress", "allow", [nodes])], false)
	count(vs) == 2
	every v in vs {
		v.path == "spec.egress[0].toNodes[0]"
		contains(v.msg, "every node, that is entity")
	}
}

test_reserved_selector_is_named_as_written if {
	peer := object.union(entity(0, "host"), {"path": "spec.egress[0].toEndpoints[0]", "via": "written as an endpoint selector"})
	vs := no_sensitive_entities.violation with input as doc([rule("egress", "allow", [peer])], false)
	some v in vs
	contains(v.msg, "entity host (written as an endpoint selector)")
}
