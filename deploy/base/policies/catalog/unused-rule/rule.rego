package guardrails.unused_rule

import rego.v1

# Evidence from observed traffic, computed in Python (offline/flow_match.py) into
# input.cluster.flows: null unless `netguard audit --flows` read a Hubble export, and `observed`
# only when some flow of the window involved this policy's pods.

# How many flows of the policy's pods the window must hold before a rule of it is called unused.
min_subject_flows := m if {
	m := input.parameters["unused-rule"].min_subject_flows
} else := 1

flows := f if {
	f := input.cluster.flows
	f.observed == true
	f.subject_flows >= min_subject_flows
	f.disagreements == 0 # Hubble says a rule of it carried flows netguard matched to none: not judged
}

violation contains v if {
	input.request.operation != "DELETE"
	some rule in flows.rules
	rule.judged == true
	rule.flows == 0
	rule.uncertain == 0
	v := {
		"path": rule.path,
		"msg": sprintf("this %s rule (%s) carried none of the %d flows observed %s, %d of which involved this policy's pods", [rule.direction, rule.allows, flows.window.flows, flows.window.period, flows.subject_flows]),
		"fix": "remove the rule if nothing needs it; if it carries rare traffic (a batch job, a failover), keep it and record why in an exception, or audit a longer window",
	}
}
