package guardrails.no_allow_all_egress

import rego.v1

violation contains v if {
	some rule in data.netguard.lib.allow_rules("egress")
	rule.facts.allows_everything
	v := {
		"path": rule.path,
		"msg": sprintf("allows egress to %s on %s", [data.netguard.lib.reach(rule), rule.ports_label]),
		"fix": "name the destinations (podSelector/namespaceSelector, toEndpoints, toFQDNs or a narrow CIDR) and the ports (ports/toPorts) the workload needs",
	}
}
