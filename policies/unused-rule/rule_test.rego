package guardrails.unused_rule_test

import rego.v1

import data.guardrails.unused_rule

window := {"flows": 40, "period": "from 2026-11-30T10:00:00Z to 2026-11-30T11:00:00Z"}

rule(flows, uncertain, judged) := {"path": "spec.egress[0]", "direction": "egress", "allows": "pods in this namespace on TCP/5432", "flows": flows, "uncertain": uncertain, "judged": judged}

evidence(rules, observed) := {"request": {"operation": "CREATE"}, "cluster": {"flows": {"window": window, "observed": observed, "subject_flows": 12, "disagreements": 0, "rules": rules, "missing": []}}}

test_a_rule_without_flows_is_reported_with_the_window if {
	some v in unused_rule.violation with input as evidence([rule(0, 0, true)], true)
	v.path == "spec.egress[0]"
	contains(v.msg, "2026-11-30T10:00:00Z")
}

test_a_used_rule_is_not if {
	count(unused_rule.violation) == 0 with input as evidence([rule(3, 0, true)], true)
}

test_a_rule_a_flow_may_have_matched_is_not if {
	count(unused_rule.violation) == 0 with input as evidence([rule(0, 2, true)], true)
}

test_a_rule_flows_cannot_settle_is_not if {
	count(unused_rule.violation) == 0 with input as evidence([rule(0, 0, false)], true)
}

test_pods_never_seen_say_nothing if {
	count(unused_rule.violation) == 0 with input as evidence([rule(0, 0, true)], false)
}

test_without_flows_nothing if {
	count(unused_rule.violation) == 0 with input as {"request": {"operation": "CREATE"}, "cluster": {"flows": null}}
}

test_a_policy_hubble_disagrees_on_is_not_judged if {
	disagreeing := {"request": {"operation": "CREATE"}, "cluster": {"flows": {"window": window, "observed": true, "subject_flows": 12, "disagreements": 3, "rules": [rule(0, 0, true)], "missing": []}}}
	count(unused_rule.violation) == 0 with input as disagreeing
}

test_too_few_flows_of_its_pods_say_nothing_when_the_parameter_asks_for_more if {
	count(unused_rule.violation) == 1 with input as object.union(evidence([rule(0, 0, true)], true), {"parameters": {"unused-rule": {"min_subject_flows": 12}}})
	count(unused_rule.violation) == 0 with input as object.union(evidence([rule(0, 0, true)], true), {"parameters": {"unused-rule": {"min_subject_flows": 13}}})
}
