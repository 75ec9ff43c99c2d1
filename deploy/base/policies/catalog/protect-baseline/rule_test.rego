package guardrails.protect_baseline_test

import data.guardrails.protect_baseline
import rego.v1

marked := {"netguard.io/baseline": "true"}

policy(labels) := {
	"kind": "NetworkPolicy", "namespace": "team-a", "name": "default-deny",
	"labels": labels, "rules": [], "subjects": [],
}

doc(operation, new_labels, old_labels, platform) := {
	"request": {"operation": operation},
	"requester": {"username": "alice", "platform": platform, "reason": "not in the platform users or groups"},
	"parameters": {"protect-baseline": {"baselines": []}},
	"policy": policy(new_labels),
	"old_policy": old(operation, old_labels),
}

old(operation, labels) := policy(labels) if operation == "UPDATE"

old(operation, _) := null if operation != "UPDATE"

test_create_marked_is_reported if {
	vs := protect_baseline.violation with input as doc("CREATE", marked, {}, false)
	count(vs) == 1
	some v in vs
	v.path == "metadata"
	contains(v.msg, "alice may not create the baseline NetworkPolicy team-a/default-deny")
}

test_update_of_marked_baseline_is_reported if {
	some v in protect_baseline.violation with input as doc("UPDATE", marked, marked, false)
	v.path == "metadata"
	contains(v.msg, "may not change the baseline")
}

test_delete_of_marked_baseline_is_reported if {
	some v in protect_baseline.violation with input as doc("DELETE", marked, {}, false)
	contains(v.msg, "may not delete the baseline")
}

test_marker_removal_is_reported_at_the_label if {
	vs := protect_baseline.violation with input as doc("UPDATE", {}, marked, false)
	count(vs) == 1
	some v in vs
	v.path == "metadata.labels[\"netguard.io/baseline\"]"
	contains(v.msg, "may not remove the marker")
	contains(v.msg, "the marker itself is protected")
}

test_marker_set_to_false_is_a_removal if {
	some v in protect_baseline.violation with input as doc("UPDATE", {"netguard.io/baseline": "false"}, marked, false)
	contains(v.msg, "remove the marker")
}

test_marker_addition_is_reported_at_the_label if {
	vs := protect_baseline.violation with input as doc("UPDATE", marked, {}, false)
	count(vs) == 1
	some v in vs
	v.path == "metadata.labels[\"netguard.io/baseline\"]"
	contains(v.msg, "may not add the marker")
}

test_listed_baseline_is_reported if {
	inp := object.union(doc("DELETE", {}, {}, false), {"parameters": {"protect-baseline": {
		"baselines": [{"namespace": "team-a", "name": "default-deny"}],
	}}})
	some v in protect_baseline.violation with input as inp
	contains(v.msg, "listed in the protect-baseline baselines")
}

test_listed_clusterwide_baseline_without_namespace_is_reported if {
	inp := object.union(doc("UPDATE", {}, {}, false), {
		"parameters": {"protect-baseline": {"baselines": [{"name": "default-deny"}]}},
		"policy": {"kind": "CiliumClusterwideNetworkPolicy", "namespace": ""},
	})
	some v in protect_baseline.violation with input as inp
	contains(v.msg, "change the baseline CiliumClusterwideNetworkPolicy default-deny")
}

test_other_name_is_not_listed if {
	inp := object.union(doc("DELETE", {}, {}, false), {"parameters": {"protect-baseline": {
		"baselines": [{"namespace": "team-b", "name": "default-deny"}],
	}}})
	count(protect_baseline.violation) == 0 with input as inp
}

test_platform_is_not_reported if {
	every op in ["CREATE", "UPDATE", "DELETE"] {
		count(protect_baseline.violation) == 0 with input as doc(op, marked, marked, true)
	}
	count(protect_baseline.violation) == 0 with input as doc("UPDATE", {}, marked, true)
	count(protect_baseline.violation) == 0 with input as doc("UPDATE", marked, {}, true)
}

test_unmarked_policy_is_not_reported if {
	every op in ["CREATE", "UPDATE", "DELETE"] {
		count(protect_baseline.violation) == 0 with input as doc(op, {"app": "web"}, {"app": "web"}, false)
	}
}

test_missing_request_still_reports if {
	inp := {"policy": policy(marked)}
	some v in protect_baseline.violation with input as inp
	contains(v.msg, "an unidentified requester may not manage the baseline")
}

baseline_tier(operation, platform) := object.union(doc(operation, {}, {}, platform), {"policy": {
	"kind": "BaselineAdminNetworkPolicy", "namespace": "", "name": "default", "tier": "Baseline",
	"labels": {}, "rules": [], "subjects": [],
}})

test_baseline_tier_policy_is_a_baseline if {
	some v in protect_baseline.violation with input as baseline_tier("DELETE", false)
	contains(v.msg, "alice may not delete the baseline BaselineAdminNetworkPolicy default")
	contains(v.msg, "it is a Baseline-tier policy")
}

test_baseline_tier_policy_by_platform_is_not_reported if {
	count(protect_baseline.violation) == 0 with input as baseline_tier("DELETE", true)
}

test_admin_tier_policy_is_not_a_baseline if {
	inp := object.union(baseline_tier("DELETE", false), {"policy": {"kind": "AdminNetworkPolicy", "tier": "Admin"}})
	count(protect_baseline.violation) == 0 with input as inp
}
