package guardrails.no_default_deny_opt_out

import rego.v1

# enableDefaultDeny: {<direction>: false} on a spec entry that has ALLOW rules in that direction:
# the allows are added without isolating the endpoints, so everything no other policy restricts
# stays allowed. Not reported (see policy.yaml assumptions):
# - an entry with only deny rules (ingressDeny/egressDeny) in the direction: false is what Cilium
#   requires there, otherwise the deny-only policy would put every selected endpoint into default
#   deny for that direction;
# - an entry with no rules at all in the direction: false is then the default anyway (a no-op).

violation contains v if {
	not data.netguard.lib.requester_is_platform
	some subject in input.policy.subjects
	some direction in ["ingress", "egress"]
	subject.default_deny_explicit[direction] == false
	allows := [rule.path |
		some rule in input.policy.rules
		rule.subject == subject.index
		rule.direction == direction
		rule.action == "allow"
	]
	count(allows) > 0
	v := {
		"path": sprintf("%s.enableDefaultDeny.%s", [subject.path, direction]),
		"msg": sprintf("turns default deny off for %s while the entry has %s allow rules (%s): the selected %s are not isolated by this policy, so all %s traffic no other policy restricts stays allowed (%s: %s)", [
			direction, direction, concat(", ", allows), subject.selects, direction, who, why_not_platform,
		]),
		"fix": sprintf("remove enableDefaultDeny.%s (it defaults to true when the entry has %s rules) and list the traffic the workload needs; to only block traffic, move the %sDeny rules into a policy of their own without allow rules; only the platform team may add allows without default deny", [direction, direction, direction]),
	}
}

# Missing requester details (a caller that sends only the policy) must not silence the rule.
who := name if {
	name := input.requester.username
} else := "an unidentified requester"

why_not_platform := reason if {
	reason := input.requester.reason
} else := "not identified as the platform team"
