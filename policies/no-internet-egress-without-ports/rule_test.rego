package guardrails.no_internet_egress_without_ports_test

import data.guardrails.no_internet_egress_without_ports as guardrail
import rego.v1

rule(overrides) := object.union(
	{
		"path": "spec.egress[0]", "direction": "egress", "action": "allow", "effective": true,
		"matches_nothing": false, "any_peer": false, "all_ports": true,
		"peers": [{"description": "0.0.0.0/0"}],
		"facts": {"internet": true, "internet_v4": true, "internet_v6": false, "internet_cidrs": ["0.0.0.0/0"]},
	},
	overrides,
)

test_whole_internet_on_every_port_is_reported if {
	some finding in guardrail.violation with input as {"policy": {"rules": [rule({})]}}
	finding.path == "spec.egress[0]"
	contains(finding.msg, "0.0.0.0/0, which covers the whole IPv4 internet")
}

test_internet_with_ports_is_not_reported if {
	count(guardrail.violation) == 0 with input as {"policy": {"rules": [rule({"all_ports": false})]}}
}

test_narrow_cidr_is_not_reported if {
	r := rule({"facts": {"internet": false, "internet_v4": false, "internet_v6": false, "internet_cidrs": []}})
	count(guardrail.violation) == 0 with input as {"policy": {"rules": [r]}}
}

test_both_families_are_named if {
	r := rule({"facts": {
		"internet": true, "internet_v4": true, "internet_v6": true,
		"internet_cidrs": ["0.0.0.0/0", "::/0"],
	}})
	some finding in guardrail.violation with input as {"policy": {"rules": [r]}}
	contains(finding.msg, "together cover the whole IPv4 and IPv6 internet")
}

test_ingress_is_not_reported if {
	r := rule({"direction": "ingress"})
	count(guardrail.violation) == 0 with input as {"policy": {"rules": [r]}}
}
