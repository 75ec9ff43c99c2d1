package guardrails.no_broad_cidr_test

import data.guardrails.no_broad_cidr as guardrail
import rego.v1

params := {"no-broad-cidr": {"max_prefix_v4": 8, "max_prefix_v6": 32}}

peer(cidr, prefix, family, private) := {
	"path": "spec.egress[0].to[0]", "type": "cidr", "cidr": cidr, "description": cidr,
	"facts": {"prefix_len": prefix, "family": family, "private_ranges": private},
}

rule(peers, overrides) := object.union(
	{
		"path": "spec.egress[0]", "direction": "egress", "action": "allow", "effective": true,
		"matches_nothing": false, "any_peer": false, "peers": peers,
	},
	overrides,
)

run(rules) := {"parameters": params, "policy": {"rules": rules}}

test_slash_one_is_reported_at_the_peer if {
	v := guardrail.violation with input as run([rule([peer("0.0.0.0/1", 1, 4, [])], {})])
	count(v) == 1
	some finding in v
	finding.path == "spec.egress[0].to[0]"
	finding.msg == "allows egress to 0.0.0.0/1: a /1 block, wider than the /8 limit for IPv4"
}

test_slash_eight_is_the_limit if {
	count(guardrail.violation) == 0 with input as run([rule([peer("11.0.0.0/8", 8, 4, [])], {})])
}

test_whole_private_range_is_reported if {
	some finding in guardrail.violation with input as run([rule([peer("10.0.0.0/8", 8, 4, ["10.0.0.0/8"])], {})])
	contains(finding.msg, "allows egress to 10.0.0.0/8, which covers the whole private range 10.0.0.0/8")
}

test_slash_zero_names_both_problems if {
	p := peer("0.0.0.0/0", 0, 4, ["10.0.0.0/8", "172.16.0.0/12"])
	some finding in guardrail.violation with input as run([rule([p], {})])
	contains(finding.msg, "a /0 block (the limit for IPv4 is /8) that covers the whole private ranges 10.0.0.0/8, 172.16.0.0/12")
}

test_ipv6_limit_applies if {
	some finding in guardrail.violation with input as run([rule([peer("2000::/3", 3, 6, [])], {})])
	contains(finding.msg, "wider than the /32 limit for IPv6")
	count(guardrail.violation) == 0 with input as run([rule([peer("2001:db8::/32", 32, 6, [])], {})])
}

test_parameters_change_the_limit if {
	strict := {"no-broad-cidr": {"max_prefix_v4": 16, "max_prefix_v6": 48}}
	some finding in guardrail.violation with input as {"parameters": strict, "policy": {"rules": [rule([peer("11.0.0.0/12", 12, 4, [])], {})]}}
	contains(finding.msg, "wider than the /16 limit for IPv4")
	contains(finding.fix, "at most a /16 for IPv4, a /48 for IPv6")
}

test_ingress_is_reported_with_from if {
	p := object.union(peer("172.16.0.0/12", 12, 4, ["172.16.0.0/12"]), {"path": "spec.ingress[0].from[0]"})
	some finding in guardrail.violation with input as run([rule([p], {"direction": "ingress", "path": "spec.ingress[0]"})])
	finding.path == "spec.ingress[0].from[0]"
	startswith(finding.msg, "allows ingress from 172.16.0.0/12")
}

test_narrow_cidr_entities_deny_and_ineffective_rules_are_not_reported if {
	broad := peer("0.0.0.0/0", 0, 4, ["10.0.0.0/8"])
	rules := [
		rule([peer("10.20.0.0/16", 16, 4, [])], {}),
		rule([{"path": "spec.egress[0].toEntities[0]", "type": "entity", "entity": "world", "facts": {}}], {}),
		rule([broad], {"action": "deny"}),
		rule([broad], {"effective": false}),
	]
	count(guardrail.violation) == 0 with input as run(rules)
}

test_every_broad_peer_is_reported if {
	p1 := peer("0.0.0.0/1", 1, 4, [])
	p2 := object.union(peer("128.0.0.0/1", 1, 4, []), {"path": "spec.egress[0].to[1]"})
	count(guardrail.violation) == 2 with input as run([rule([p1, p2], {})])
}
