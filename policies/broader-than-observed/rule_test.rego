package guardrails.broader_than_observed_test

import rego.v1

import data.guardrails.broader_than_observed

window := {"flows": 40, "period": "from 2026-11-30T10:00:00Z to 2026-11-30T11:00:00Z"}

internet(observed, more) := {"aspect": "internet", "allowed": "the whole internet", "observed": observed, "observed_count": count(observed), "more": more, "narrower": "only toFQDNs matchName api.github.com"}

rule(breadth, uncertain) := {"path": "spec.egress[0]", "direction": "egress", "flows": 9, "uncertain": uncertain, "judged": true, "breadth": breadth}

evidence(rules) := {"request": {"operation": "CREATE"}, "parameters": {}, "cluster": {"flows": {"window": window, "observed": true, "subject_flows": 12, "rules": rules, "missing": []}}}

test_the_internet_with_three_names_seen_is_reported_with_them if {
	some v in broader_than_observed.violation with input as evidence([rule([internet(["a.example", "b.example", "c.example"], false)], 0)])
	v.path == "spec.egress[0]"
	contains(v.msg, "a.example, b.example, c.example")
	contains(v.fix, "api.github.com")
}

test_more_than_max_observed_is_not_a_small_part if {
	count(broader_than_observed.violation) == 0 with input as evidence([rule([internet(["a", "b", "c", "d", "e", "f"], false)], 0)])
}

test_the_parameter_is_read if {
	count(broader_than_observed.violation) == 1 with input as object.union(evidence([rule([internet(["a", "b", "c", "d", "e", "f"], false)], 0)]), {"parameters": {"broader-than-observed": {"max_observed": 10}}})
}

test_a_capped_list_is_not_judged if {
	count(broader_than_observed.violation) == 0 with input as evidence([rule([internet(["a"], true)], 0)])
}

test_uncertain_flows_are_not_judged if {
	count(broader_than_observed.violation) == 0 with input as evidence([rule([internet(["a"], false)], 1)])
}

test_without_flows_nothing if {
	count(broader_than_observed.violation) == 0 with input as {"request": {"operation": "CREATE"}, "cluster": {"flows": null}}
}
