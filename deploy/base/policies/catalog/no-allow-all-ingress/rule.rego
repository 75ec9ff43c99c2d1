package guardrails.no_allow_all_ingress

import rego.v1

violation contains v if {
	some rule in data.netguard.lib.allow_rules("ingress")
	rule.facts.allows_everything
	v := {
		"path": rule.path,
		"msg": sprintf("allows ingress from %s on every port", [data.netguard.lib.reach(rule)]),
		"fix": "name the sources (podSelector/namespaceSelector, fromEndpoints, fromEntities such as cluster, or a narrow CIDR) and the ports (ports/toPorts) the workload serves",
	}
}
