package guardrails.no_default_deny_opt_out_test

import data.guardrails.no_default_deny_opt_out
import rego.v1

subject(path, ingress, egress) := {
	"path": path, "selects": "pods",
	"default_deny_explicit": {"ingress": ingress, "egress": egress},
}

doc(subjects, platform) := {
	"requester": {"username": "alice", "platform": platform, "reason": "not in the platform users or groups"},
	"policy": {"kind": "CiliumNetworkPolicy", "subjects": subjects, "rules": []},
}

test_ingress_opt_out_is_reported if {
	vs := no_default_deny_opt_out.violation with input as doc([subject("spec", false, null)], false)
	count(vs) == 1
	some v in vs
	v.path == "spec.enableDefaultDeny.ingress"
	contains(v.msg, "turns default deny off for ingress")
	contains(v.msg, "alice: not in the platform users or groups")
}

test_both_directions_in_specs_are_reported if {
	subjects := [subject("specs[0]", null, null), subject("specs[1]", false, false)]
	vs := no_default_deny_opt_out.violation with input as doc(subjects, false)
	{v.path | some v in vs} == {"specs[1].enableDefaultDeny.ingress", "specs[1].enableDefaultDeny.egress"}
}

test_true_and_unset_are_not_reported if {
	count(no_default_deny_opt_out.violation) == 0 with input as doc([subject("spec", true, null)], false)
}

test_platform_is_not_reported if {
	count(no_default_deny_opt_out.violation) == 0 with input as doc([subject("spec", false, false)], true)
}
