package guardrails.cluster_scoped_policy_restricted_test

import data.guardrails.cluster_scoped_policy_restricted
import rego.v1

doc(kind, operation, platform) := {
	"request": {"operation": operation},
	"requester": {
		"username": "alice", "platform": platform,
		"reason": "not in the platform users or groups",
	},
	"policy": {"kind": kind, "clusterwide": kind != "CiliumNetworkPolicy", "flavor": flavor_of(kind), "namespace": "", "name": "p", "rules": [], "subjects": []},
}

flavor_of(kind) := "cilium" if startswith(kind, "Cilium") else := "kubernetes"

test_create_by_app_team_is_reported if {
	some v in cluster_scoped_policy_restricted.violation with input as doc("CiliumClusterwideNetworkPolicy", "CREATE", false)
	v.path == "metadata"
	contains(v.msg, "alice may not create a CiliumClusterwideNetworkPolicy (not in the platform users or groups)")
}

test_update_by_app_team_is_reported if {
	some v in cluster_scoped_policy_restricted.violation with input as doc("CiliumClusterwideNetworkPolicy", "UPDATE", false)
	contains(v.msg, "may not change")
}

test_delete_by_app_team_is_reported if {
	some v in cluster_scoped_policy_restricted.violation with input as doc("CiliumClusterwideNetworkPolicy", "DELETE", false)
	contains(v.msg, "may not delete")
}

test_gitops_controller_reason_is_named if {
	inp := object.union(doc("CiliumClusterwideNetworkPolicy", "UPDATE", false), {"requester": {
		"username": "system:serviceaccount:argocd:argocd-application-controller",
		"reason": "GitOps controller acting for team-*",
	}})
	some v in cluster_scoped_policy_restricted.violation with input as inp
	contains(v.msg, "(GitOps controller acting for team-*)")
}

test_platform_is_not_reported if {
	every op in ["CREATE", "UPDATE", "DELETE"] {
		count(cluster_scoped_policy_restricted.violation) == 0 with input as doc("CiliumClusterwideNetworkPolicy", op, true)
	}
}

test_namespaced_kind_is_not_reported if {
	count(cluster_scoped_policy_restricted.violation) == 0 with input as doc("CiliumNetworkPolicy", "CREATE", false)
}

test_missing_requester_still_reports if {
	some v in cluster_scoped_policy_restricted.violation with input as {"policy": {"kind": "CiliumClusterwideNetworkPolicy", "clusterwide": true}}
	contains(v.msg, "an unidentified requester may not manage a CiliumClusterwideNetworkPolicy (not identified as the platform team)")
}

test_network_policy_api_kinds_are_reported if {
	every kind, article in {"AdminNetworkPolicy": "an", "BaselineAdminNetworkPolicy": "a", "ClusterNetworkPolicy": "a"} {
		some v in cluster_scoped_policy_restricted.violation with input as doc(kind, "CREATE", false)
		contains(v.msg, sprintf("alice may not create %s %s", [article, kind]))
	}
}
