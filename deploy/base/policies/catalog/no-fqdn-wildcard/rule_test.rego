package guardrails.no_fqdn_wildcard_test

import data.guardrails.no_fqdn_wildcard
import rego.v1

fqdn(pattern, suffix, public) := {
	"path": "spec.egress[0].toFQDNs[0]", "type": "fqdn",
	"fqdn": {"name": "", "pattern": pattern},
	"facts": {"fqdn_suffix": suffix, "fqdn_public_suffix": public},
}

rule(peers) := {
	"path": "spec.egress[0]", "direction": "egress", "action": "allow", "effective": true,
	"matches_nothing": false, "any_peer": false, "all_ports": false, "ports_label": "TCP/443",
	"peers": peers, "l7": {}, "facts": {},
}

doc(rules) := {"policy": {"flavor": "cilium", "rules": rules}}

test_star_is_every_name if {
	some v in no_fqdn_wildcard.violation with input as doc([rule([fqdn("*", "", true)])])
	v.path == "spec.egress[0].toFQDNs[0]"
	contains(v.msg, "to every DNS name (matchPattern \"*\")")
}

test_public_suffix_is_named if {
	some v in no_fqdn_wildcard.violation with input as doc([rule([fqdn("*.co.uk", "co.uk", true)])])
	contains(v.msg, "every domain under the public suffix .co.uk")
}

test_registered_domain_is_not_reported if {
	count(no_fqdn_wildcard.violation) == 0 with input as doc([rule([fqdn("*.example.com", "example.com", false)])])
}

test_match_name_is_not_reported if {
	peer := {"path": "spec.egress[0].toFQDNs[0]", "type": "fqdn", "fqdn": {"name": "api.example.com", "pattern": ""}, "facts": {"fqdn_suffix": "", "fqdn_public_suffix": false}}
	count(no_fqdn_wildcard.violation) == 0 with input as doc([rule([peer])])
}

test_l7_dns_star_is_not_reported if {
	r := object.union(rule([]), {"any_peer": true, "l7": {"dns": [{"matchPattern": "*"}]}})
	count(no_fqdn_wildcard.violation) == 0 with input as doc([r])
}

test_deny_rule_is_not_reported if {
	r := object.union(rule([fqdn("*", "", true)]), {"action": "deny"})
	count(no_fqdn_wildcard.violation) == 0 with input as doc([r])
}
