package guardrails.namespace_has_default_deny_test

import data.guardrails.namespace_has_default_deny as rule
import rego.v1

status(ingress, egress) := {"ingress": ingress, "egress": egress}

cluster(after, before) := {
	"enabled": true, "synced": true, "stale": false, "age_seconds": 0,
	"namespace": "team-a", "namespace_labels": {}, "baselines": [],
	"default_deny": after, "default_deny_before": before,
}

doc(operation, c) := {
	"request": {"operation": operation},
	"policy": {"kind": "NetworkPolicy", "namespace": "team-a", "name": "web", "clusterwide": false},
	"parameters": {"namespace-has-default-deny": {"directions": ["ingress", "egress"]}},
	"cluster": c,
}

test_namespace_without_default_deny_is_reported_once_for_both_directions if {
	vs := rule.violation with input as doc("CREATE", cluster(status(false, false), status(false, false)))
	count(vs) == 1
	some v in vs
	v.path == "metadata.namespace"
	v.msg == "namespace team-a has no default-deny policy for ingress and egress: pods that no policy selects accept traffic from anywhere and can send traffic anywhere"
	contains(v.fix, "netguard baseline --namespace team-a")
	contains(v.fix, "policyTypes [Ingress, Egress]")
}

test_only_the_missing_direction_is_named if {
	vs := rule.violation with input as doc("UPDATE", cluster(status(true, false), status(true, false)))
	some v in vs
	v.msg == "namespace team-a has no default-deny policy for egress: pods that no policy selects can send traffic anywhere"
	contains(v.fix, "policyTypes [Egress]")
}

test_namespace_with_default_deny_is_not_reported if {
	count(rule.violation) == 0 with input as doc("CREATE", cluster(status(true, true), status(false, false)))
}

test_directions_parameter_limits_what_is_required if {
	d := object.union(doc("CREATE", cluster(status(true, false), status(true, false))), {"parameters": {"namespace-has-default-deny": {"directions": ["ingress"]}}})
	count(rule.violation) == 0 with input as d
}

test_stale_view_says_nothing if {
	c := object.union(cluster(status(false, false), status(false, false)), {"stale": true})
	count(rule.violation) == 0 with input as doc("CREATE", c)
}

test_unsynced_view_says_nothing if {
	c := object.union(cluster(status(false, false), status(false, false)), {"synced": false})
	count(rule.violation) == 0 with input as doc("CREATE", c)
}

test_unknown_status_says_nothing if {
	count(rule.violation) == 0 with input as doc("CREATE", cluster(null, null))
}

test_without_cluster_view_says_nothing if {
	c := object.union(cluster(null, null), {"enabled": false})
	count(rule.violation) == 0 with input as doc("CREATE", c)
}

test_missing_cluster_input_says_nothing if {
	d := json.remove(doc("CREATE", cluster(status(false, false), status(false, false))), ["cluster"])
	count(rule.violation) == 0 with input as d
}

test_delete_of_the_last_default_deny_is_reported if {
	vs := rule.violation with input as doc("DELETE", cluster(status(false, true), status(true, true)))
	count(vs) == 1
	some v in vs
	v.path == "metadata"
	v.msg == "deleting NetworkPolicy team-a/web leaves namespace team-a without a default-deny policy for ingress"
}

test_delete_in_a_namespace_that_had_none_is_not_reported if {
	count(rule.violation) == 0 with input as doc("DELETE", cluster(status(false, false), status(false, false)))
}

test_clusterwide_policy_is_not_reported if {
	d := object.union(doc("CREATE", cluster(status(false, false), status(false, false))), {"policy": {"clusterwide": true}})
	count(rule.violation) == 0 with input as d
}
