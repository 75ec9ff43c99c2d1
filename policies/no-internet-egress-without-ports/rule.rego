package guardrails.no_internet_egress_without_ports

import rego.v1

violation contains v if {
	some rule in data.netguard.lib.allow_rules("egress")
	rule.all_ports
	rule.facts.internet
	v := {
		"path": rule.path,
		"msg": sprintf("allows egress to %s on every port", [data.netguard.lib.reach(rule)]),
		"fix": "limit the rule to the ports the workload needs (ports/toPorts) and prefer toFQDNs or narrower CIDRs",
	}
}
