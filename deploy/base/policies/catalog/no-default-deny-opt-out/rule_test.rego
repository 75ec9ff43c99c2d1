package guardrails.no_default_deny_opt_out_test

import data.guardrails.no_default_deny_opt_out
import rego.v1

subject(index, path, ingress, egress) := {
	"index": index, "path": path, "selects": "pods",
	"default_deny_explicit": {"ingress": ingress, "egress": egress},
}

rule(index, path, direction, action) := {"path": path, "subject": index, "direction": direction, "action": action}

doc(subjects, rules, platform) := {
	"requester": {"username": "alice", "platform": platform, "reason": "not in the platform users or groups"},
	"policy": {"kind": "CiliumNetworkPolicy", "subjects": subjects, "rules": rules},
}

violations(subjects, rules) := vs if {
	vs := no_default_deny_opt_out.violation with input as doc(subjects, rules, false)
}

test_ingress_opt_out_with_allows_is_reported if {
	vs := violations([subject(0, "spec", false, null)], [rule(0, "spec.ingress[0]", "ingress", "allow")])
	count(vs) == 1
	some v in vs
	v.path == "spec.enableDefaultDeny.ingress"
	contains(v.msg, "turns default deny off for ingress while the entry has ingress allow rules (spec.ingress[0])")
	contains(v.msg, "alice: not in the platform users or groups")
	contains(v.fix, "remove enableDefaultDeny.ingress")
}

test_both_directions_in_specs_are_reported if {
	subjects := [subject(0, "specs[0]", null, null), subject(1, "specs[1]", false, false)]
	rules := [
		rule(0, "specs[0].ingress[0]", "ingress", "allow"),
		rule(1, "specs[1].ingress[0]", "ingress", "allow"),
		rule(1, "specs[1].egress[0]", "egress", "allow"),
	]
	{v.path | some v in violations(subjects, rules)} == {"specs[1].enableDefaultDeny.ingress", "specs[1].enableDefaultDeny.egress"}
}

# The reason for the rework: a deny-only entry MUST set false, or it puts every selected endpoint
# into default deny (Cilium defaults enableDefaultDeny to true for a direction with deny rules too).
test_deny_only_direction_with_false_is_not_reported if {
	vs := violations([subject(0, "spec", null, false)], [rule(0, "spec.egressDeny[0]", "egress", "deny")])
	count(vs) == 0
}

test_false_in_a_direction_without_rules_is_not_reported if {
	# ingress: false with egress rules only: the default for ingress is false anyway.
	vs := violations([subject(0, "spec", false, null)], [rule(0, "spec.egress[0]", "egress", "allow")])
	count(vs) == 0
}

test_false_without_any_rules_is_not_reported if {
	count(violations([subject(0, "spec", false, false)], [])) == 0
}

test_allow_and_deny_with_false_is_reported if {
	rules := [rule(0, "spec.egressDeny[0]", "egress", "deny"), rule(0, "spec.egress[0]", "egress", "allow")]
	vs := violations([subject(0, "spec", null, false)], rules)
	{v.path | some v in vs} == {"spec.enableDefaultDeny.egress"}
	some v in vs
	contains(v.msg, "(spec.egress[0])")
	not contains(v.msg, "egressDeny")
}

test_allows_of_another_entry_do_not_count if {
	# specs[1] is deny-only; the allows belong to specs[0], which keeps its default deny.
	subjects := [subject(0, "specs[0]", null, null), subject(1, "specs[1]", null, false)]
	rules := [rule(0, "specs[0].egress[0]", "egress", "allow"), rule(1, "specs[1].egressDeny[0]", "egress", "deny")]
	count(violations(subjects, rules)) == 0
}

test_allows_in_the_other_direction_do_not_count if {
	rules := [rule(0, "spec.ingress[0]", "ingress", "allow"), rule(0, "spec.egressDeny[0]", "egress", "deny")]
	count(violations([subject(0, "spec", null, false)], rules)) == 0
}

test_true_and_unset_are_not_reported if {
	count(violations([subject(0, "spec", true, null)], [rule(0, "spec.ingress[0]", "ingress", "allow")])) == 0
}

test_platform_is_not_reported if {
	rules := [rule(0, "spec.ingress[0]", "ingress", "allow"), rule(0, "spec.egress[0]", "egress", "allow")]
	count(no_default_deny_opt_out.violation) == 0 with input as doc([subject(0, "spec", false, false)], rules, true)
}

test_missing_requester_is_still_reported if {
	vs := no_default_deny_opt_out.violation with input as {"policy": {
		"subjects": [subject(0, "spec", false, null)],
		"rules": [rule(0, "spec.ingress[0]", "ingress", "allow")],
	}}
	some v in vs
	contains(v.msg, "an unidentified requester: not identified as the platform team")
}
