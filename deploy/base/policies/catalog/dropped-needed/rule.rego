package guardrails.dropped_needed

import rego.v1

# Evidence from observed traffic, computed in Python (offline/flow_match.py) into
# input.cluster.flows.missing: flows of this policy's pods dropped for want of an allow (DNS, or
# what the other end's policy allows on its side), with the rule that would have passed them
# (rule_text: JSON in the policy's own kind, "" when the kind has no obvious spelling).

flows := f if {
	f := input.cluster.flows
	f.observed == true
}

violation contains v if {
	input.request.operation != "DELETE"
	some m in flows.missing
	v := {
		"path": m.path,
		"msg": sprintf("%d %s flows of %s were dropped %s because no rule allowed them: %s", [m.flows, m.direction, concat(", ", m.sources), flows.window.period, m.what]),
		"fix": fix(m),
	}
}

fix(m) := sprintf("add this %s rule: %s", [m.direction, m.rule_text]) if {
	m.rule_text != ""
} else := sprintf("add an %s rule that allows %s", [m.direction, m.what])
