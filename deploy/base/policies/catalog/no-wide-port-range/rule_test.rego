package guardrails.no_wide_port_range_test

import data.guardrails.no_wide_port_range
import rego.v1

port(label, span, all_ports) := {
	"path": "spec.ingress[0].ports[0]", "label": label, "span": span, "all_ports": all_ports,
}

peer(other) := {"path": "spec.ingress[0].from[0]", "type": "pods", "description": "pods in namespaces team-b", "facts": {"other_namespaces": other}}

rule(ports, peers, all_ports) := {
	"path": "spec.ingress[0]", "direction": "ingress", "action": "allow", "effective": true,
	"matches_nothing": false, "any_peer": false, "all_ports": all_ports, "ports": ports, "peers": peers,
	"facts": {"allows_everything": false, "internet_cidrs": []},
}

doc(rules) := {"policy": {"flavor": "kubernetes", "rules": rules}, "parameters": {"no-wide-port-range": {"max_span": 1024}}}

test_wide_range_is_reported_at_the_port if {
	r := rule([port("TCP/1024-65535", 64512, false)], [peer(false)], false)
	vs := no_wide_port_range.violation with input as doc([r])
	count(vs) == 1
	some v in vs
	v.path == "spec.ingress[0].ports[0]"
	contains(v.msg, "TCP/1024-65535, a range of 64512 ports (more than 1024)")
}

test_range_at_the_limit_is_not_reported if {
	r := rule([port("TCP/1-1024", 1024, false)], [peer(true)], false)
	count(no_wide_port_range.violation) == 0 with input as doc([r])
}

test_max_span_parameter_is_used if {
	r := rule([port("TCP/8000-8100", 101, false)], [peer(false)], false)
	inp := object.union(doc([r]), {"parameters": {"no-wide-port-range": {"max_span": 100}}})
	count(no_wide_port_range.violation) == 1 with input as inp
}

test_all_ports_to_other_namespace_is_reported_at_the_rule if {
	r := rule([], [peer(true)], true)
	some v in no_wide_port_range.violation with input as doc([r])
	v.path == "spec.ingress[0]"
	contains(v.msg, "every port from pods in namespaces team-b")
	contains(v.fix, "ports")
}

test_all_ports_within_namespace_is_not_reported if {
	r := rule([port("TCP/all ports", 65535, true)], [peer(false)], true)
	count(no_wide_port_range.violation) == 0 with input as doc([r])
}

test_allows_everything_is_left_to_other_guardrails if {
	r := object.union(rule([], [peer(true)], true), {"facts": {"allows_everything": true}})
	count(no_wide_port_range.violation) == 0 with input as doc([r])
}

test_deny_rule_is_not_reported if {
	r := object.union(rule([port("TCP/1024-65535", 64512, false)], [], false), {"action": "deny"})
	count(no_wide_port_range.violation) == 0 with input as doc([r])
}
