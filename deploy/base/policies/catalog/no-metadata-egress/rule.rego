package guardrails.no_metadata_egress

import rego.v1

# rule.facts.metadata is computed in Python (facts.py) from this guardrail's parameters
# `addresses` and `ports`: the metadata addresses the rule's peers contain (after `except`),
# when the rule allows a metadata port or every port.
violation contains v if {
	some rule in data.netguard.lib.allow_rules("egress")
	addresses := [a | some a in rule.facts.metadata; not denied(rule, a)]
	count(addresses) > 0
	v := {
		"path": rule.path,
		"msg": sprintf("reaches the cloud metadata %s %s through %s on %s; credentials of the node's cloud identity are served there", [
			address_word(addresses),
			concat(" and ", addresses),
			through(rule, addresses),
			on_ports(rule),
		]),
		"fix": sprintf(exclude_fix, [concat(" and ", [host_cidr(a) | some a in addresses]), pronoun(addresses)]),
	}
}

# toFQDNs naming a cloud metadata host (metadata.google.internal, instance-data.ec2.internal, or a
# pattern that can match one such as **.internal): the DNS answer is the metadata address, so the
# rule reaches it on its ports. peer.facts.metadata_host is computed in Python (webhook/core/fqdn.py).
violation contains v if {
	some rule in data.netguard.lib.allow_rules("egress")
	some peer in rule.peers
	peer.type == "fqdn"
	host := object.get(peer.facts, "metadata_host", "")
	host != ""
	on_metadata_port(rule)
	not fqdn_denied(rule)
	v := {
		"path": peer.path,
		"msg": sprintf("reaches the cloud metadata service through toFQDNs %s, which can match %s (it resolves to the metadata address) on %s; credentials of the node's cloud identity are served there", [
			peer.description, host, on_ports(rule),
		]),
		"fix": sprintf("remove the metadata host name from %s and name only the external services the workload calls", [data.netguard.lib.say({"networkpolicy": "toFQDNs", "npapi": "domainNames", "calico": "domains"})]),
	}
}

# How to exclude the address in the policy's own language (networks has no except: a Deny written first does it).
exclude_fix := data.netguard.lib.say({
	"networkpolicy": "exclude %s: add %s to the CIDR's except list (ipBlock.except, toCIDRSet.except) or narrow the CIDR; instead of world/all or a rule without destinations name the destinations the workload needs (toFQDNs, toEndpoints or narrow CIDRs)",
	"npapi": "exclude %s: write a Deny rule for %s before this rule (networks has no except list; the first matching rule decides) or narrow the networks",
	"calico": "exclude %s: add %s to destination.notNets, or write a Deny rule for it before this one (the first matching rule decides), or narrow destination.nets",
})

on_metadata_port(rule) if {
	count(rule.ports) == 0
	count(rule.icmp) == 0
}

on_metadata_port(rule) if {
	some port in metadata_ports
	some entry in rule.ports
	covers(entry, port)
}

metadata_addresses := object.get(input, ["parameters", "no-metadata-egress", "addresses"], ["169.254.169.254"])

# A deny of the same subject that blocks every IPv4 metadata address on every metadata port.
fqdn_denied(rule) if {
	v4 := [a | some a in metadata_addresses; not contains(a, ":")]
	count(v4) > 0
	every a in v4 {
		denied(rule, a)
	}
}

pronoun(addresses) := "it" if count(addresses) == 1

pronoun(addresses) := "them" if count(addresses) > 1

address_word(addresses) := "address" if count(addresses) == 1

address_word(addresses) := "addresses" if count(addresses) > 1

host_cidr(address) := sprintf("%s/128", [address]) if contains(address, ":")

host_cidr(address) := sprintf("%s/32", [address]) if not contains(address, ":")

# The peers that contain the addresses, as written.
through(rule, _) := "a rule that names no destinations" if rule.any_peer

through(rule, addresses) := concat(", ", descriptions) if {
	not rule.any_peer
	descriptions := [peer.description | some peer in rule.peers; holds_any(peer, addresses)]
	count(descriptions) > 0
}

through(rule, addresses) := concat(", ", [p.description | some p in rule.peers]) if {
	not rule.any_peer
	count([peer | some peer in rule.peers; holds_any(peer, addresses)]) == 0
}

holds_any(peer, addresses) if {
	some a in addresses
	a in peer.facts.metadata_ips
}

on_ports(rule) := "every port" if rule.all_ports

on_ports(rule) := concat(", ", labels) if {
	not rule.all_ports
	labels := [sprintf("TCP/%v", [port]) |
		some port in metadata_ports
		some entry in rule.ports
		covers(entry, port)
	]
	count(labels) > 0
}

on_ports(rule) := rule.ports_label if {
	not rule.all_ports
	count([port | some port in metadata_ports; some entry in rule.ports; covers(entry, port)]) == 0
}

metadata_ports := object.get(input, ["parameters", "no-metadata-egress", "ports"], [80])

# A port entry lets TCP traffic to `port` through (named ports resolve against destination pods,
# so a metadata address never matches them).
covers(entry, _) if {
	entry.protocol in {"TCP", "ANY"}
	entry.name == ""
	entry.all_ports
}

covers(entry, port) if {
	entry.protocol in {"TCP", "ANY"}
	entry.name == ""
	not entry.all_ports
	entry.port <= port
	port <= last_port(entry)
}

last_port(entry) := entry.end_port if entry.end_port != null

last_port(entry) := entry.port if entry.end_port == null

# A Cilium egressDeny rule of the same subject that blocks the address on every metadata port
# (deny rules take precedence over allow rules in Cilium). In a tiered kind (AdminNetworkPolicy,
# ClusterNetworkPolicy: input.policy.tier is set) the first matching rule decides, so only a deny
# written before the allow rule blocks it.
denied(rule, address) if {
	some i, deny in input.policy.rules
	before(i, rule)
	deny.direction == "egress"
	deny.action == "deny"
	deny.subject == rule.subject
	deny.effective
	not deny.matches_nothing
	address in deny.facts.metadata
	every port in metadata_ports {
		deny_covers(deny, port)
	}
}

before(_, _) if object.get(input.policy, "tier", "") == ""

before(i, rule) if {
	object.get(input.policy, "tier", "") != ""
	some j, r in input.policy.rules
	r.path == rule.path
	i < j
}

deny_covers(deny, _) if deny.all_ports

deny_covers(deny, port) if {
	some entry in deny.ports
	covers(entry, port)
}
