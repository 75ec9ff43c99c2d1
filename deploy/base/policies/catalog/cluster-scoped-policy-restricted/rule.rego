package guardrails.cluster_scoped_policy_restricted

import rego.v1

# A CiliumClusterwideNetworkPolicy applies to every namespace (and node): only the platform
# team may create, change or delete one.

verbs := {"CREATE": "create", "UPDATE": "change", "DELETE": "delete"}

violation contains v if {
	input.policy.kind == "CiliumClusterwideNetworkPolicy"
	not data.netguard.lib.requester_is_platform
	verb := verb_of(object.get(input, "request", {}))
	v := {
		"path": "metadata",
		"msg": sprintf("%s may not %s a CiliumClusterwideNetworkPolicy (%s): it applies to every namespace and node, so only the platform team manages it", [who, verb, why_not_platform]),
		"fix": "use a namespaced CiliumNetworkPolicy or NetworkPolicy in your own namespace, or ask the platform team to make this clusterwide change",
	}
}

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
