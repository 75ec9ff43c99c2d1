package guardrails.broader_than_observed

import rego.v1

# Evidence from observed traffic, computed in Python (offline/flow_match.py) into
# input.cluster.flows: for each rule, each way it is broad (`breadth`: internet, namespaces,
# ports) with what was observed and the narrower peers or ports that would have carried it all.
# This rule decides what "a small part" is: at most max_observed distinct values.

max_observed := m if {
	m := input.parameters["broader-than-observed"].max_observed
} else := 5

flows := f if {
	f := input.cluster.flows
	f.observed == true
}

went := {"egress": "went to", "ingress": "came from"}

violation contains v if {
	input.request.operation != "DELETE"
	some rule in flows.rules
	rule.judged == true
	rule.uncertain == 0
	some b in rule.breadth
	b.more == false
	b.observed_count > 0
	b.observed_count <= max_observed
	v := {
		"path": rule.path,
		"msg": sprintf("this %s rule allows %s, but the %d flows it carried %s %s only %s", [rule.direction, b.allowed, rule.flows, flows.window.period, went[rule.direction], concat(", ", b.observed)]),
		"fix": sprintf("narrow it to what carried every observed flow: %s (netguard tighten writes it)", [b.narrower]),
	}
}
