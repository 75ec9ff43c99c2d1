package guardrails.internet_ingress_test

import data.guardrails.internet_ingress as guardrail
import rego.v1

rule(overrides) := object.union(
	{
		"path": "spec.ingress[0]", "subject": 0, "direction": "ingress", "action": "allow", "effective": true,
		"matches_nothing": false, "any_peer": false, "all_ports": false, "ports_label": "TCP/443",
		"peers": [{"description": "0.0.0.0/0"}],
		"facts": {"internet": true, "internet_v4": true, "internet_v6": false, "internet_cidrs": ["0.0.0.0/0"]},
	},
	overrides,
)

no_internet := {"internet": false, "internet_v4": false, "internet_v6": false, "internet_cidrs": []}

test_internet_on_limited_ports_is_reported if {
	v := guardrail.violation with input as {"policy": {"rules": [rule({})]}}
	count(v) == 1
	some finding in v
	finding.path == "spec.ingress[0]"
	contains(finding.msg, "0.0.0.0/0, which covers the whole IPv4 internet, on TCP/443")
	contains(finding.fix, "load balancer")
}

test_entity_world_is_named if {
	r := rule({"ports_label": "TCP/80, TCP/443", "facts": {
		"internet": true, "internet_v4": true, "internet_v6": true,
		"internet_cidrs": ["entity world"],
	}})
	some finding in guardrail.violation with input as {"policy": {"rules": [r]}}
	contains(finding.msg, "entity world, which covers the whole IPv4 and IPv6 internet, on TCP/80, TCP/443")
}

test_rule_without_sources_is_reported if {
	r := rule({"any_peer": true, "peers": [], "ports_label": "UDP/53", "facts": {
		"internet": true, "internet_v4": true, "internet_v6": true, "internet_cidrs": [],
	}})
	some finding in guardrail.violation with input as {"policy": {"rules": [r]}}
	contains(finding.msg, "every source (the rule names no peers), on UDP/53")
}

test_every_port_is_left_to_the_enforcing_guardrail if {
	r := rule({"all_ports": true, "ports_label": "every port"})
	count(guardrail.violation) == 0 with input as {"policy": {"rules": [r]}}
}

test_narrow_cidr_is_not_reported if {
	count(guardrail.violation) == 0 with input as {"policy": {"rules": [rule({"facts": no_internet})]}}
}

test_egress_deny_and_ineffective_rules_are_not_reported if {
	rules := [
		rule({"direction": "egress", "path": "spec.egress[0]"}),
		rule({"action": "deny", "path": "spec.ingressDeny[0]"}),
		rule({"effective": false}),
		rule({"matches_nothing": true}),
	]
	count(guardrail.violation) == 0 with input as {"policy": {"rules": rules}}
}

# Across rules: Python hands over one combined reach per group of spec entries that may select
# the same pods, with only the families no single rule covers alone and that the rules without a
# port restriction do not already cover together (webhook/core/facts.py).

half(path, cidr, ports) := rule({
	"path": path, "ports_label": ports, "peers": [{"description": cidr}],
	"facts": object.union(no_internet, {"internet_cidrs": [cidr]}),
})

# The combined reach of some of the rules, as Python computes it.
reach(v4, v6, rules) := {
	"internet": true, "internet_v4": v4, "internet_v6": v6,
	"rules": [r.path | some r in rules],
	"cidrs": [cidr | some r in rules; some cidr in r.facts.internet_cidrs],
	"ports": [r.ports_label | some r in rules],
}

combined(rules, any_ports) := {"policy": {
	"rules": rules,
	"facts": {"ingress": {"combined_any_ports": any_ports, "combined_all_ports": []}},
}}

halves := [half("spec.ingress[0]", "0.0.0.0/1", "TCP/443"), half("spec.ingress[1]", "128.0.0.0/1", "TCP/80")]

halves_reach := reach(true, false, halves)

test_halves_on_ports_are_reported_once_at_the_first_rule if {
	v := guardrail.violation with input as combined(halves, [halves_reach])
	count(v) == 1
	some finding in v
	finding.path == "spec.ingress[0]"
	finding.msg == "spec.ingress[0] (0.0.0.0/1 on TCP/443) and spec.ingress[1] (128.0.0.0/1 on TCP/80) together allow ingress from the whole IPv4 internet"
	contains(finding.fix, "in spec.ingress[0] and spec.ingress[1], admit only the sources")
}

test_no_combined_reach_is_not_reported if {
	count(guardrail.violation) == 0 with input as combined(halves, [])
}

test_combined_reach_on_every_port_is_left_to_the_enforcing_guardrail if {
	input_doc := {"policy": {"rules": halves, "facts": {"ingress": {"combined_all_ports": [halves_reach], "combined_any_ports": []}}}}
	count(guardrail.violation) == 0 with input as input_doc
}

test_each_rule_is_named_with_its_own_ports if {
	rules := [
		half("spec.ingress[0]", "0.0.0.0/1", "TCP/443, UDP/53"),
		object.union(half("spec.ingress[1]", "128.0.0.0/2", "every port"), {"all_ports": true}),
		half("spec.ingress[2]", "192.0.0.0/2", "TCP/80"),
	]
	r := reach(true, false, rules)
	v := guardrail.violation with input as combined(rules, [r])
	count(v) == 1
	some finding in v
	contains(finding.msg, "spec.ingress[0] (0.0.0.0/1 on TCP/443, UDP/53) and spec.ingress[1] (128.0.0.0/2 on every port) and spec.ingress[2] (192.0.0.0/2 on TCP/80)")
}

test_one_finding_per_group_of_spec_entries if {
	rules := [
		half("specs[0].ingress[0]", "0.0.0.0/1", "TCP/443"), half("specs[0].ingress[1]", "128.0.0.0/1", "TCP/443"),
		half("specs[1].ingress[0]", "::/1", "TCP/443"), half("specs[1].ingress[1]", "8000::/1", "TCP/80"),
	]
	v := guardrail.violation with input as combined(rules, [
		reach(true, false, array.slice(rules, 0, 2)),
		reach(false, true, array.slice(rules, 2, 4)),
	])
	count(v) == 2
	{f.path | some f in v} == {"specs[0].ingress[0]", "specs[1].ingress[0]"}
	some v6 in v
	v6.path == "specs[1].ingress[0]"
	v6.msg == "specs[1].ingress[0] (::/1 on TCP/443) and specs[1].ingress[1] (8000::/1 on TCP/80) together allow ingress from the whole IPv6 internet"
}

test_egress_combined_reach_is_not_reported if {
	input_doc := {"policy": {"rules": halves, "facts": {"egress": {"combined_all_ports": [], "combined_any_ports": [halves_reach]}}}}
	count(guardrail.violation) == 0 with input as input_doc
}
