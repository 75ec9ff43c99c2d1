package guardrails.no_wide_port_range

import rego.v1

max_span := m if {
	m := input.parameters["no-wide-port-range"].max_span
} else := 1024

# Rules that allow everything (every peer on every port) are reported by the allow-all
# guardrails; here only the ports of otherwise narrower rules are judged. A list, not a set: a set of
# rule objects compares whole rules with each other (three times the cost of the whole guardrail).
candidate_rules := [rule |
	some direction in ["ingress", "egress"]
	some rule in data.netguard.lib.allow_rules(direction)
	not rule.facts.allows_everything
]

# A written range wider than max_span. Entries that are every port (no port, port 0, 1-65535)
# make the whole rule "every port" and are judged below, towards other namespaces.
violation contains v if {
	some rule in candidate_rules
	some port in rule.ports
	not port.all_ports
	port.span > max_span
	v := {
		"path": port.path,
		"msg": sprintf("allows %s on %s, a range of %d ports (more than %d): every service listening in it is reachable %s %s", [
			rule.direction, port.label, port.span, max_span,
			data.netguard.lib.peer_word(rule.direction), peers_words(rule),
		]),
		"fix": "list the ports the workload actually uses (one entry per port, or a range no wider than needed)",
	}
}

violation contains v if {
	some rule in candidate_rules
	rule.all_ports
	others := [p.description |
		some p in rule.peers
		p.facts.other_namespaces
	]
	count(others) > 0
	v := {
		"path": rule.path,
		"msg": sprintf("allows %s on every port %s %s, beyond this namespace: every service they run is reachable, not just the one needed", [
			rule.direction, data.netguard.lib.peer_word(rule.direction), concat(", ", others),
		]),
		"fix": fix_all_ports(rule),
	}
}

# lib.reach(rule) is not used: its last branch (a comprehension as an else value) fails on
# regorus ("statements not scheduled").
peers_words(rule) := sprintf("every %s (the rule names no peers)", [data.netguard.lib.endpoint_word(rule.direction)]) if {
	rule.any_peer
} else := words if {
	words := concat(", ", [p.description | some p in rule.peers])
}

fix_all_ports(rule) := "add ports (protocol and port) to the rule for the services the workload uses" if {
	input.policy.flavor == "kubernetes"
} else := "add toPorts (protocol and port) to the rule for the services the workload uses"
