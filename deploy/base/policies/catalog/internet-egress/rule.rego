package guardrails.internet_egress

import rego.v1

# One rule reaches the whole internet, but only on some ports (every port is
# no-internet-egress-without-ports' finding).
violation contains v if {
	some rule in data.netguard.lib.allow_rules("egress")
	rule.facts.internet
	not rule.all_ports
	v := {
		"path": rule.path,
		"msg": sprintf("allows egress to %s, on %s: any server on the internet can be reached on those ports", [
			data.netguard.lib.reach(rule),
			rule.ports_label,
		]),
		"fix": sprintf("name the services the workload calls instead of the whole internet: %s", [names_instead]),
	}
}

# Several rules cover the internet only together (0.0.0.0/1 on TCP/443 in one rule, 128.0.0.0/1
# on TCP/80 in the next). Python (webhook/core/facts.py) computes one entry per group of spec entries
# that may select the same pods, leaving out families a single rule covers alone (the finding
# above) and families the rules without a port restriction already cover together
# (no-internet-egress-without-ports): one finding per entry, at the first contributing rule.
violation contains v if {
	some reach in input.policy.facts.egress.combined_any_ports
	v := {
		"path": reach.rules[0],
		"msg": sprintf("%s together allow egress to %s", [
			concat(" and ", data.netguard.lib.combined_parts(reach)),
			data.netguard.lib.internet_family({"facts": reach}),
		]),
		"fix": sprintf("in %s, name the services the workload calls instead: %s", [concat(" and ", reach.rules), names_instead]),
	}
}

# What to name instead, in the fields of the policy's own language (NetworkPolicy and Cilium keep one wording).
names_instead := data.netguard.lib.say({
	"networkpolicy": "toFQDNs (Cilium) or their narrow CIDRs (ipBlock/toCIDR)",
	"cilium": "toFQDNs (Cilium) or their narrow CIDRs (ipBlock/toCIDR)",
	"npapi": "domainNames for their host names or their narrow CIDRs in networks",
	"calico": "their narrow CIDRs in destination.nets (or domains, in Calico Enterprise)",
})
