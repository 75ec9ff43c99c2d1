package guardrails.no_priority_tie

import rego.v1

# Another stored policy of the same kind and tier has this policy's priority. Python lists them from
# netguard's cluster view (input.cluster.same_priority): empty when netguard does not watch the
# cluster or the view cannot be trusted, and then this rule says nothing (Python tells the
# requester the status is unknown).

cluster := c if {
	c := input.cluster
	c.enabled == true
	c.synced == true
	c.stale == false
}

violation contains v if {
	input.request.operation != "DELETE"
	some other in cluster.same_priority
	v := {
		"path": "spec.priority",
		"msg": sprintf("%s %s has the same tier (%s) and priority (%v) as %s %s: the API leaves their order undefined, so which one decides overlapping traffic can change between implementations or restarts", [input.policy.kind, input.policy.name, input.policy.tier, input.policy.priority, other.kind, other.name]),
		"fix": sprintf("give %s a priority no other %s of the %s tier has (lower is evaluated first; leave gaps such as 10, 20, 30)", [input.policy.name, input.policy.kind, input.policy.tier]),
	}
}
