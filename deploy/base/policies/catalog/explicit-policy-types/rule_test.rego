package guardrails.explicit_policy_types_test

import data.guardrails.explicit_policy_types
import rego.v1

doc(kind, explicit, egress) := {"policy": {"kind": kind, "rules": [], "subjects": [{
	"path": "spec", "policy_types_explicit": explicit,
	"isolates": {"ingress": true, "egress": egress},
}]}}

test_missing_types_without_egress_rules if {
	some v in explicit_policy_types.violation with input as doc("NetworkPolicy", false, false)
	v.path == "spec.policyTypes"
	contains(v.msg, "defaulted it to [Ingress]: egress is not isolated")
	contains(v.fix, "policyTypes: [Ingress] if egress should stay open")
}

test_missing_types_with_egress_rules if {
	some v in explicit_policy_types.violation with input as doc("NetworkPolicy", false, true)
	contains(v.msg, "[Ingress, Egress] only because spec.egress has rules")
	contains(v.fix, "policyTypes: [Ingress, Egress], so egress stays isolated")
}

test_explicit_types_are_not_reported if {
	count(explicit_policy_types.violation) == 0 with input as doc("NetworkPolicy", true, false)
}

test_cilium_is_not_reported if {
	count(explicit_policy_types.violation) == 0 with input as doc("CiliumNetworkPolicy", false, false)
}
