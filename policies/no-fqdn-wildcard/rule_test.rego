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

fqdn_reach(pattern, suffix, example) := object.union(fqdn(pattern, suffix, true), {"facts": {
	"fqdn_suffix": suffix, "fqdn_public_suffix": true, "fqdn_example": example,
}})

test_suffix_spelled_by_the_wildcard_names_an_example if {
	peer := fqdn_reach("**.amazonaws.com", "s3.amazonaws.com", "attacker.s3.amazonaws.com")
	some v in no_fqdn_wildcard.violation with input as doc([rule([peer])])
	contains(v.msg, "every domain under the public suffix .s3.amazonaws.com")
	contains(v.msg, "(matchPattern \"**.amazonaws.com\" matches attacker.s3.amazonaws.com)")
}

test_wildcard_public_suffix_rule_is_named_as_is if {
	peer := fqdn_reach("*.*.compute.amazonaws.com", "*.compute.amazonaws.com", "attacker.tenant.compute.amazonaws.com")
	some v in no_fqdn_wildcard.violation with input as doc([rule([peer])])
	contains(v.msg, "every domain under the public suffixes *.compute.amazonaws.com")
}

test_star_names_no_example if {
	some v in no_fqdn_wildcard.violation with input as doc([rule([fqdn_reach("*", "", "attacker.com")])])
	contains(v.msg, "to every DNS name (matchPattern \"*\"), so the FQDN rule restricts nothing")
}

test_missing_example_fact_is_fine if {
	some v in no_fqdn_wildcard.violation with input as doc([rule([fqdn("*.co.uk", "co.uk", true)])])
	contains(v.msg, "(matchPattern \"*.co.uk\"), where anyone can register")
}
