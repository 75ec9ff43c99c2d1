package guardrails.no_allow_all_egress_test

import data.guardrails.no_allow_all_egress
import rego.v1

rule(overrides) := object.union(
	{
		"path": "spec.egress[0]", "direction": "egress", "action": "allow", "effective": true,
		"matches_nothing": false, "any_peer": true, "all_ports": true, "ports_label": "every port", "peers": [],
		"facts": {"allows_everything": true, "internet_v4": true, "internet_v6": true, "internet_cidrs": []},
	},
	overrides,
)

test_empty_rule_is_reported if {
	v := no_allow_all_egress.violation with input as {"policy": {"rules": [rule({})]}}
	count(v) == 1
	some finding in v
	finding.path == "spec.egress[0]"
	contains(finding.msg, "every destination")
}

test_rule_with_ports_is_not_reported if {
	r := rule({"all_ports": false, "facts": {"allows_everything": false}})
	count(no_allow_all_egress.violation) == 0 with input as {"policy": {"rules": [r]}}
}

test_ingress_rule_is_not_reported if {
	r := rule({"direction": "ingress", "path": "spec.ingress[0]"})
	count(no_allow_all_egress.violation) == 0 with input as {"policy": {"rules": [r]}}
}

test_ineffective_rule_is_not_reported if {
	count(no_allow_all_egress.violation) == 0 with input as {"policy": {"rules": [rule({"effective": false})]}}
}

test_cilium_empty_rule_is_not_reported if {
	r := rule({"matches_nothing": true, "any_peer": false})
	count(no_allow_all_egress.violation) == 0 with input as {"policy": {"rules": [r]}}
}

test_deny_rule_is_not_reported if {
	count(no_allow_all_egress.violation) == 0 with input as {"policy": {"rules": [rule({"action": "deny"})]}}
}

test_internet_cidrs_are_named_in_the_message if {
	r := rule({"any_peer": false, "facts": {
		"allows_everything": true, "internet_v4": true, "internet_v6": false,
		"internet_cidrs": ["0.0.0.0/1", "128.0.0.0/1"],
	}})
	some finding in no_allow_all_egress.violation with input as {"policy": {"rules": [r]}}
	contains(finding.msg, "0.0.0.0/1 and 128.0.0.0/1, which together cover the whole IPv4 internet")
}
