package guardrails.no_default_deny_opt_out

import rego.v1

# enableDefaultDeny: {<direction>: false} makes the policy add allows (or denies) without
# isolating the endpoints: everything no other policy restricts stays allowed.

violation contains v if {
	not data.netguard.lib.requester_is_platform
	some subject in input.policy.subjects
	some direction in ["ingress", "egress"]
	subject.default_deny_explicit[direction] == false
	v := {
		"path": sprintf("%s.enableDefaultDeny.%s", [subject.path, direction]),
		"msg": sprintf("turns default deny off for %s: the selected %s are not isolated by this policy, so all %s traffic no other policy restricts stays allowed (%s: %s)", [
			direction, subject.selects, direction, who, why_not_platform,
		]),
		"fix": sprintf("remove enableDefaultDeny.%s (it defaults to true when the policy has %s rules) and list the traffic the workload needs; only the platform team may opt out", [direction, direction]),
	}
}

# Missing requester details (a caller that sends only the policy) must not silence the rule.
who := name if {
	name := input.requester.username
} else := "an unidentified requester"

why_not_platform := reason if {
	reason := input.requester.reason
} else := "not identified as the platform team"
