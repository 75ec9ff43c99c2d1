package guardrails.no_internet_egress_without_ports

import rego.v1

# One rule reaches the internet on every port.
violation contains v if {
	some rule in data.netguard.lib.allow_rules("egress")
	rule.all_ports
	rule.facts.internet
	v := {
		"path": rule.path,
		"msg": sprintf("allows egress to %s on %s", [data.netguard.lib.reach(rule), rule.ports_label]),
		"fix": "limit the rule to the ports the workload needs (ports/toPorts) and prefer toFQDNs or narrower CIDRs",
	}
}

# Several rules without a port restriction cover the internet only together (0.0.0.0/1 in
# spec.egress[0], 128.0.0.0/1 in spec.egress[1]). Python (webhook/core/facts.py) computes one entry per
# group of spec entries that may select the same pods, with only the families no single rule covers
# alone (those are the finding above): one finding per entry, at the first contributing rule.
violation contains v if {
	some reach in input.policy.facts.egress.combined_all_ports
	v := {
		"path": reach.rules[0],
		"msg": sprintf("%s together allow egress to %s on every port (%s); they cover %s", [
			concat(" and ", reach.rules),
			concat(", ", reach.cidrs),
			concat("; ", reach.ports),
			data.netguard.lib.internet_family({"facts": reach}),
		]),
		"fix": sprintf("limit %s to the ports the workload needs (ports/toPorts) and prefer toFQDNs or narrower CIDRs", [concat(" and ", reach.rules)]),
	}
}
