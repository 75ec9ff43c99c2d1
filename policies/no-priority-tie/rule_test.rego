package guardrails.no_priority_tie_test

import rego.v1

import data.guardrails.no_priority_tie

policy := {"kind": "AdminNetworkPolicy", "name": "second", "tier": "Admin", "priority": 10}

first := {"kind": "AdminNetworkPolicy", "namespace": "", "name": "first"}

view(ties, stale) := {"enabled": true, "synced": true, "stale": stale, "same_priority": ties}

test_a_tie_is_reported_at_the_priority if {
	some v in no_priority_tie.violation with input as {"request": {"operation": "CREATE"}, "policy": policy, "cluster": view([first], false)}
	v.path == "spec.priority"
	contains(v.msg, "first")
}

test_no_tie_no_finding if {
	count(no_priority_tie.violation) == 0 with input as {"request": {"operation": "CREATE"}, "policy": policy, "cluster": view([], false)}
}

test_a_stale_view_says_nothing if {
	count(no_priority_tie.violation) == 0 with input as {"request": {"operation": "UPDATE"}, "policy": policy, "cluster": view([first], true)}
}

test_a_delete_is_not_judged if {
	count(no_priority_tie.violation) == 0 with input as {"request": {"operation": "DELETE"}, "policy": policy, "cluster": view([first], false)}
}
