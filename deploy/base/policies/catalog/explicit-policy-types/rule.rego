package guardrails.explicit_policy_types

import rego.v1

# A NetworkPolicy without policyTypes gets them from the API server: Ingress, plus Egress
# only while spec.egress has rules. So egress isolation silently follows the egress rules.

violation contains v if {
	input.policy.kind == "NetworkPolicy"
	some subject in input.policy.subjects
	not subject.policy_types_explicit
	v := {
		"path": "spec.policyTypes",
		"msg": message(subject),
		"fix": fix(subject),
	}
}

fix(subject) := "write the types out: policyTypes: [Ingress, Egress], so egress stays isolated whatever the egress rules" if {
	subject.isolates.egress
} else := "write the types out: policyTypes: [Ingress] if egress should stay open, or [Ingress, Egress] to isolate egress too"

message(subject) := "policyTypes is not set, so Kubernetes defaulted it to [Ingress, Egress] only because spec.egress has rules: removing the last egress rule would silently stop isolating egress" if {
	subject.isolates.egress
} else := "policyTypes is not set, so Kubernetes defaulted it to [Ingress]: egress is not isolated, and adding an egress rule later would silently put the selected pods into default-deny egress"
