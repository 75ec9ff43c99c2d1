package guardrails.no_internet_ingress_without_ports_test

import data.guardrails.no_internet_ingress_without_ports as guardrail
import rego.v1

rule(overrides) := object.union(
	{
		"path": "spec.ingress[0]", "subject": 0, "direction": "ingress", "action": "allow", "effective": true,
		"matches_nothing": false, "any_peer": false, "all_ports": true, "ports_label": "every port",
		"peers": [{"description": "0.0.0.0/0"}],
		"facts": {"internet": true, "internet_v4": true, "internet_v6": false, "internet_cidrs": ["0.0.0.0/0"]},
	},
	overrides,
)

test_whole_internet_on_every_port_is_reported if {
	some finding in guardrail.violation with input as {"policy": {"rules": [rule({})]}}
	finding.path == "spec.ingress[0]"
	contains(finding.msg, "allows ingress from 0.0.0.0/0, which covers the whole IPv4 internet, on every port")
}

test_internet_with_ports_is_not_reported if {
	count(guardrail.violation) == 0 with input as {"policy": {"rules": [rule({"all_ports": false})]}}
}

test_narrow_cidr_is_not_reported if {
	r := rule({"facts": {"internet": false, "internet_v4": false, "internet_v6": false, "internet_cidrs": []}})
	count(guardrail.violation) == 0 with input as {"policy": {"rules": [r]}}
}

test_world_ipv6_is_named if {
	r := rule({"facts": {
		"internet": true, "internet_v4": false, "internet_v6": true,
		"internet_cidrs": ["entity world-ipv6"],
	}})
	some finding in guardrail.violation with input as {"policy": {"rules": [r]}}
	contains(finding.msg, "entity world-ipv6, which covers the whole IPv6 internet")
}

test_egress_deny_and_ineffective_rules_are_not_reported if {
	rules := [
		rule({"direction": "egress", "path": "spec.egress[0]"}),
		rule({"action": "deny", "path": "spec.ingressDeny[0]"}),
		rule({"effective": false}),
	]
	count(guardrail.violation) == 0 with input as {"policy": {"rules": rules}}
}

# Across rules: Python hands over one combined reach per group of spec entries that may select
# the same pods, with only the families no single rule covers alone (webhook/core/facts.py).

half(path, cidr) := rule({
	"path": path, "peers": [{"description": cidr}],
	"facts": {"internet": false, "internet_v4": false, "internet_v6": false, "internet_cidrs": [cidr]},
})

reach(v4, v6, rules, cidrs) := {
	"internet": true, "internet_v4": v4, "internet_v6": v6, "rules": rules, "cidrs": cidrs,
	"ports": [port | some _ in rules; port := "every port"],
}

combined(rules, all_ports) := {"policy": {
	"rules": rules,
	"facts": {"ingress": {"combined_all_ports": all_ports, "combined_any_ports": []}},
}}

halves := [half("spec.ingress[0]", "0.0.0.0/1"), half("spec.ingress[1]", "128.0.0.0/1")]

halves_reach := reach(true, false, ["spec.ingress[0]", "spec.ingress[1]"], ["0.0.0.0/1", "128.0.0.0/1"])

test_halves_across_rules_are_reported_once if {
	v := guardrail.violation with input as combined(halves, [halves_reach])
	count(v) == 1
	some finding in v
	finding.path == "spec.ingress[0]"
	finding.msg == "spec.ingress[0] and spec.ingress[1] together allow ingress from 0.0.0.0/1, 128.0.0.0/1 on every port (every port; every port); they cover the whole IPv4 internet"
	contains(finding.fix, "limit spec.ingress[0] and spec.ingress[1] to the ports")
}

test_no_combined_reach_is_not_reported if {
	count(guardrail.violation) == 0 with input as combined(halves, [])
}

test_combined_reach_beside_a_single_rule_of_the_other_family_is_reported_too if {
	v6 := rule({"facts": {"internet": true, "internet_v4": false, "internet_v6": true, "internet_cidrs": ["::/0"]}})
	rules := [v6, half("spec.ingress[1]", "0.0.0.0/1"), half("spec.ingress[2]", "128.0.0.0/1")]
	r := reach(true, false, ["spec.ingress[1]", "spec.ingress[2]"], ["0.0.0.0/1", "128.0.0.0/1"])
	v := guardrail.violation with input as combined(rules, [r])
	count(v) == 2
	some single in v
	single.path == "spec.ingress[0]"
	contains(single.msg, "::/0, which covers the whole IPv6 internet")
	some together in v
	together.path == "spec.ingress[1]"
	contains(together.msg, "they cover the whole IPv4 internet")
}

test_one_finding_per_group_of_spec_entries if {
	rules := [
		half("specs[0].ingress[0]", "0.0.0.0/1"), half("specs[0].ingress[1]", "128.0.0.0/1"),
		half("specs[1].ingress[0]", "::/1"), half("specs[1].ingress[1]", "8000::/1"),
	]
	v := guardrail.violation with input as combined(rules, [
		reach(true, false, ["specs[0].ingress[0]", "specs[0].ingress[1]"], ["0.0.0.0/1", "128.0.0.0/1"]),
		reach(false, true, ["specs[1].ingress[0]", "specs[1].ingress[1]"], ["::/1", "8000::/1"]),
	])
	count(v) == 2
	{f.path | some f in v} == {"specs[0].ingress[0]", "specs[1].ingress[0]"}
	some v6 in v
	v6.path == "specs[1].ingress[0]"
	contains(v6.msg, "they cover the whole IPv6 internet")
}

test_combined_reach_on_some_ports_is_left_to_internet_ingress if {
	input_doc := {"policy": {"rules": halves, "facts": {"ingress": {"combined_all_ports": [], "combined_any_ports": [halves_reach]}}}}
	count(guardrail.violation) == 0 with input as input_doc
}

test_egress_combined_reach_is_not_reported if {
	input_doc := {"policy": {"rules": halves, "facts": {"egress": {"combined_all_ports": [halves_reach], "combined_any_ports": []}}}}
	count(guardrail.violation) == 0 with input as input_doc
}
