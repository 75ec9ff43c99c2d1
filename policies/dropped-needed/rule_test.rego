package guardrails.dropped_needed_test

import rego.v1

import data.guardrails.dropped_needed

window := {"flows": 40, "period": "from 2026-11-30T10:00:00Z to 2026-11-30T11:00:00Z"}

dns(text) := {"path": "spec.egress", "direction": "egress", "what": "DNS to kube-system/k8s-app=kube-dns on UDP/53 and TCP/53", "flows": 7, "sources": ["team-a/app=web"], "rule_text": text}

evidence(missing) := {"request": {"operation": "CREATE"}, "cluster": {"flows": {"window": window, "observed": true, "subject_flows": 12, "rules": [], "missing": missing}}}

test_dropped_dns_is_reported_with_the_rule if {
	some v in dropped_needed.violation with input as evidence([dns("{\"to\": []}")])
	v.path == "spec.egress"
	contains(v.msg, "team-a/app=web")
	contains(v.fix, "{\"to\": []}")
}

test_a_kind_without_a_spelling_gets_words if {
	some v in dropped_needed.violation with input as evidence([dns("")])
	contains(v.fix, "allows DNS to kube-system")
}

test_no_drops_nothing if {
	count(dropped_needed.violation) == 0 with input as evidence([])
}

test_without_flows_nothing if {
	count(dropped_needed.violation) == 0 with input as {"request": {"operation": "CREATE"}, "cluster": {"flows": null}}
}
