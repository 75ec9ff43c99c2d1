package guardrails.protect_baseline

import rego.v1

# Baseline policies (label netguard.io/baseline: "true", or listed in the `baselines`
# parameter) are the platform's: only the platform may create, change or delete them, and
# nobody else may add or remove the marker.

marker := "netguard.io/baseline"

marker_path := "metadata.labels[\"netguard.io/baseline\"]"

baselines := b if {
	b := input.parameters["protect-baseline"].baselines
} else := []

marked(policy) if policy.labels[marker] == "true"

listed if {
	some b in baselines
	object.get(b, "namespace", "") == input.policy.namespace
	b.name == input.policy.name
}

# On DELETE input.policy is the object being deleted; on UPDATE the old object counts too.
baseline if marked(input.policy)

baseline if {
	input.request.operation == "UPDATE"
	marked(input.old_policy)
}

baseline if listed

# A Baseline-tier policy (BaselineAdminNetworkPolicy, ClusterNetworkPolicy tier: Baseline) is the
# cluster's baseline by what it is: it decides the traffic no NetworkPolicy decides.
baseline if input.policy.tier == "Baseline"

marker_added if {
	input.request.operation == "UPDATE"
	marked(input.policy)
	not marked(input.old_policy)
}

marker_removed if {
	input.request.operation == "UPDATE"
	marked(input.old_policy)
	not marked(input.policy)
}

marker_changed if marker_added

marker_changed if marker_removed

what := sprintf("%s %s/%s", [input.policy.kind, input.policy.namespace, input.policy.name]) if {
	input.policy.namespace != ""
} else := sprintf("%s %s", [input.policy.kind, input.policy.name])

verbs := {"CREATE": "create", "UPDATE": "change", "DELETE": "delete"}

why := sprintf("it is marked %s=true", [marker]) if {
	marked(input.policy)
} else := sprintf("it was marked %s=true", [marker]) if {
	input.request.operation == "UPDATE"
	marked(input.old_policy)
} else := "it is a Baseline-tier policy, the cluster's default for traffic no NetworkPolicy decides" if {
	input.policy.tier == "Baseline"
} else := "it is listed in the protect-baseline baselines"

violation contains v if {
	not data.netguard.lib.requester_is_platform
	marker_added
	v := {
		"path": marker_path,
		"msg": sprintf("%s may not add the marker %s to %s (%s): the marker itself is protected (it makes a policy platform-owned)", [who, marker, what, why_not_platform]),
		"fix": sprintf("remove the label %s; ask the platform team if this policy should become a baseline", [marker]),
	}
}

violation contains v if {
	not data.netguard.lib.requester_is_platform
	marker_removed
	v := {
		"path": marker_path,
		"msg": sprintf("%s may not remove the marker %s from %s (%s): the marker itself is protected (removing it unprotects the baseline)", [who, marker, what, why_not_platform]),
		"fix": sprintf("keep %s: \"true\"; ask the platform team to retire the baseline", [marker]),
	}
}

violation contains v if {
	not data.netguard.lib.requester_is_platform
	not marker_changed
	baseline
	verb := verb_of(object.get(input, "request", {}))
	v := {
		"path": "metadata",
		"msg": sprintf("%s may not %s the baseline %s (%s): %s, only the platform team manages it", [who, verb, what, why_not_platform, why]),
		"fix": fix_of(object.get(input, "request", {})),
	}
}

fix := {
	"CREATE": sprintf("drop the label %s (only the platform team creates baselines) or ask the platform team to create it", [marker]),
	"UPDATE": "leave the baseline as it is and add your own policy beside it (policies add up); ask the platform team to change the baseline",
	"DELETE": "leave the baseline in place; ask the platform team if it must go",
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
fix_of(request) := fix[request.operation] if {
	fix[request.operation]
} else := fix.UPDATE
