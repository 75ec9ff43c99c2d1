package guardrails.cluster_scoped_policy_restricted

import rego.v1

# A cluster-scoped policy (CiliumClusterwideNetworkPolicy, and the network-policy-api kinds
# AdminNetworkPolicy, BaselineAdminNetworkPolicy and ClusterNetworkPolicy) applies to every
# namespace: only the platform team may create, change or delete one. Read from the model's
# clusterwide (the kind's scope in the registry), never from kind names.

verbs := {"CREATE": "create", "UPDATE": "change", "DELETE": "delete"}

violation contains v if {
	input.policy.clusterwide
	not data.netguard.lib.requester_is_platform
	verb := verb_of(object.get(input, "request", {}))
	v := {
		"path": "metadata",
		"msg": sprintf("%s may not %s %s (%s): it applies to %s, so only the platform team manages it", [who, verb, a_kind, why_not_platform, reach]),
		"fix": fix,
	}
}

# Cilium's clusterwide policies select nodes too (nodeSelector).
reach := "every namespace and node" if input.policy.flavor == "cilium" else := "every namespace"

fix := "use a namespaced CiliumNetworkPolicy or NetworkPolicy in your own namespace, or ask the platform team to make this clusterwide change" if {
	input.policy.flavor == "cilium"
} else := "use a namespaced NetworkPolicy in your own namespace, or ask the platform team to make this clusterwide change"

# The kind with its article ("an AdminNetworkPolicy").
a_kind := sprintf("an %s", [input.policy.kind]) if {
	regex.match(`^[AEIOU]`, input.policy.kind)
} else := sprintf("a %s", [input.policy.kind])

# Missing requester details (a caller that sends only the policy) must not silence the rule.
who := name if {
	name := input.requester.username
} else := "an unidentified requester"

why_not_platform := reason if {
	reason := input.requester.reason
} else := "not identified as the platform team"
verb_of(request) := verbs[request.operation] if {
	verbs[request.operation]
} else := "manage"
