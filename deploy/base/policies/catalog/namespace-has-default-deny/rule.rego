package guardrails.namespace_has_default_deny

import rego.v1

# The namespace of the policy has no default-deny baseline for a direction once this request is
# applied. Python computes the status from netguard's cluster view with the request's own policy
# taken into account (input.cluster.default_deny, and default_deny_before for a DELETE); it is null
# when netguard does not watch the cluster or the view cannot be trusted, and then this rule says
# nothing (the requester gets a notice that the status is unknown, from Python).

directions := d if {
	d := input.parameters["namespace-has-default-deny"].directions
} else := ["ingress", "egress"]

cluster := c if {
	c := input.cluster
	c.enabled == true
	c.synced == true
	c.stale == false
	is_object(c.default_deny)
}

effects := {"ingress": "accept traffic from anywhere", "egress": "can send traffic anywhere"}

types := {"ingress": "Ingress", "egress": "Egress"}

missing := m if {
	m := [d | some d in directions; cluster.default_deny[d] == false]
}

lost := l if {
	l := [d | some d in directions; cluster.default_deny_before[d] == true; cluster.default_deny[d] == false]
}

violation contains v if {
	input.request.operation != "DELETE"
	not input.policy.clusterwide
	count(missing) > 0
	ns := cluster.namespace
	what := [effects[d] | some d in missing]
	policy_types := [types[d] | some d in missing]
	v := {
		"path": "metadata.namespace",
		"msg": sprintf("namespace %s has no default-deny policy for %s: pods that no policy selects %s", [ns, concat(" and ", missing), concat(" and ", what)]),
		"fix": sprintf("ask the platform team for the namespace's baseline (netguard baseline --namespace %s), or add a policy with an empty pod selector, policyTypes [%s] and no rules", [ns, concat(", ", policy_types)]),
	}
}

violation contains v if {
	input.request.operation == "DELETE"
	not input.policy.clusterwide
	count(lost) > 0
	ns := cluster.namespace
	v := {
		"path": "metadata",
		"msg": sprintf("deleting %s %s/%s leaves namespace %s without a default-deny policy for %s", [input.policy.kind, ns, input.policy.name, ns, concat(" and ", lost)]),
		"fix": "keep it, or put another default deny in place first (ask the platform team for the namespace's baseline)",
	}
}
