package guardrails.internet_ingress

import rego.v1

# One rule admits the whole internet, but only on some ports (every port is
# no-internet-ingress-without-ports' finding).
violation contains v if {
	some rule in data.netguard.lib.allow_rules("ingress")
	rule.facts.internet
	not rule.all_ports
	v := {
		"path": rule.path,
		"msg": sprintf("allows ingress from %s, on %s: anyone on the internet may connect on those ports", [
			data.netguard.lib.reach(rule),
			rule.ports_label,
		]),
		"fix": "admit only the sources that must connect: the load balancer's or partner's CIDRs, or the ingress controller's namespace (namespaceSelector/fromEndpoints)",
	}
}

# Several rules cover the internet only together (0.0.0.0/1 on TCP/443 in one rule, 128.0.0.0/1
# on TCP/80 in the next). Python (webhook/core/facts.py) computes one entry per group of spec entries
# that may select the same pods, leaving out families a single rule covers alone (the finding
# above) and families the rules without a port restriction already cover together
# (no-internet-ingress-without-ports): one finding per entry, at the first contributing rule.
violation contains v if {
	some reach in input.policy.facts.ingress.combined_any_ports
	v := {
		"path": reach.rules[0],
		"msg": sprintf("%s together allow ingress from %s", [
			concat(" and ", data.netguard.lib.combined_parts(reach)),
			data.netguard.lib.internet_family({"facts": reach}),
		]),
		"fix": sprintf("in %s, admit only the sources that must connect (load balancer or partner CIDRs, the ingress controller's namespace)", [concat(" and ", reach.rules)]),
	}
}
