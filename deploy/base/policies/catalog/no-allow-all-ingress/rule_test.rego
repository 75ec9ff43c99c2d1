package guardrails.no_allow_all_ingress_test

import data.guardrails.no_allow_all_ingress
import rego.v1

rule(overrides) := object.union(
	{
		"path": "spec.ingress[0]", "direction": "ingress", "action": "allow", "effective": true,
		"matches_nothing": false, "any_peer": true, "all_ports": true, "ports_label": "every port", "peers": [],
		"facts": {"allows_everything": true, "internet_v4": true, "internet_v6": true, "internet_cidrs": []},
	},
	overrides,
)

test_empty_rule_is_reported if {
	v := no_allow_all_ingress.violation with input as {"policy": {"rules": [rule({})]}}
	count(v) == 1
	some finding in v
	finding.path == "spec.ingress[0]"
	contains(finding.msg, "allows ingress from every source (the rule names no peers) on every port")
}

test_entity_all_is_reported if {
	r := rule({
		"path": "specs[1].ingress[0]", "any_peer": false,
		"peers": [{"type": "entity", "entity": "all", "description": "entity all"}],
		"facts": {"allows_everything": true, "internet_v4": true, "internet_v6": true, "internet_cidrs": ["entity all"]},
	})
	some finding in no_allow_all_ingress.violation with input as {"policy": {"rules": [r]}}
	finding.path == "specs[1].ingress[0]"
	contains(finding.msg, "entity all, which covers the whole IPv4 and IPv6 internet")
}

test_rule_with_ports_is_not_reported if {
	r := rule({"all_ports": false, "facts": {"allows_everything": false}})
	count(no_allow_all_ingress.violation) == 0 with input as {"policy": {"rules": [r]}}
}

test_egress_rule_is_not_reported if {
	r := rule({"direction": "egress", "path": "spec.egress[0]"})
	count(no_allow_all_ingress.violation) == 0 with input as {"policy": {"rules": [r]}}
}

test_ineffective_rule_is_not_reported if {
	count(no_allow_all_ingress.violation) == 0 with input as {"policy": {"rules": [rule({"effective": false})]}}
}

test_cilium_empty_rule_is_not_reported if {
	r := rule({"matches_nothing": true, "any_peer": false, "facts": {"allows_everything": false}})
	count(no_allow_all_ingress.violation) == 0 with input as {"policy": {"rules": [r]}}
}

test_deny_rule_is_not_reported if {
	count(no_allow_all_ingress.violation) == 0 with input as {"policy": {"rules": [rule({"action": "deny"})]}}
}

test_every_offending_rule_is_reported if {
	rules := [rule({}), rule({"path": "spec.ingress[1]"})]
	count(no_allow_all_ingress.violation) == 2 with input as {"policy": {"rules": rules}}
}
