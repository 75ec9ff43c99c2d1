package guardrails.no_allow_all_ingress

import rego.v1

violation contains v if {
	some rule in data.netguard.lib.allow_rules("ingress")
	rule.facts.allows_everything
	v := {
		"path": rule.path,
		"msg": sprintf("allows ingress from %s on %s", [data.netguard.lib.reach(rule), rule.ports_label]),
		"fix": "name the sources (podSelector with a namespaceSelector that names the namespaces, fromEndpoints, or a narrow CIDR) and the ports (ports/toPorts) the workload serves",
	}
}
