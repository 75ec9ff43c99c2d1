package guardrails.no_fqdn_wildcard

import rego.v1

# toFQDNs matchPattern that can match a name whose registrable domain (eTLD+1) the wildcard
# picks: anyone can register such a name, so the pod can reach any host an attacker sets up.
# Python (webhook/core/fqdn.py wildcard_reach) decides this against the Public Suffix List, including
# public suffixes the wildcard itself spells (`**.amazonaws.com` -> attacker.s3.amazonaws.com).
# L7 DNS rules (toPorts[].rules.dns) only control which lookups are allowed and are not peers.

violation contains v if {
	some rule in data.netguard.lib.allow_rules("egress")
	some peer in rule.peers
	peer.type == "fqdn"
	peer.facts.fqdn_public_suffix
	v := {
		"path": peer.path,
		"msg": sprintf("allows egress on %s to %s (matchPattern \"%s\"%s), %s", [
			rule.ports_label, names(peer.facts.fqdn_suffix), peer.fqdn.pattern,
			example(peer.facts), effect(peer.facts.fqdn_suffix),
		]),
		"fix": data.netguard.lib.say({
			"networkpolicy": "use matchName for the exact hosts, or a pattern under a domain you control (*.example.com)",
			"npapi": "list the exact host names in domainNames, or a wildcard under a domain you control (*.example.com)",
			"calico": "list the exact host names in domains, or a wildcard under a domain you control (*.example.com)",
		}),
	}
}

effect(suffix) := "so the FQDN rule restricts nothing: the pod can reach any host whose name resolves" if {
	suffix == ""
} else := "where anyone can register a name: the pod can reach any host, an attacker's included"

names(suffix) := "every DNS name" if {
	suffix == ""
} else := sprintf("every domain under the public suffixes %s", [suffix]) if {
	startswith(suffix, "*.")
} else := sprintf("every domain under the public suffix .%s", [suffix])

# A concrete name the pattern matches that anyone could register (fqdn_example, set by facts.py).
example(facts) := sprintf(" matches %s", [name]) if {
	facts.fqdn_suffix != ""
	name := object.get(facts, "fqdn_example", "")
	name != ""
} else := ""
