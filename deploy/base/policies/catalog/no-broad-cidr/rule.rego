package guardrails.no_broad_cidr

import rego.v1

# A CIDR peer of an allow rule (either direction) that is wider than the configured prefix, or
# that covers a whole private range (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 100.64.0.0/10,
# fc00::/7). prefix_len, family and private_ranges come from Python (facts.py); IPv4-mapped IPv6
# CIDRs count as the IPv4 range they denote.
violation contains v if {
	some direction in ["egress", "ingress"]
	some rule in data.netguard.lib.allow_rules(direction)
	some peer in rule.peers
	peer.type == "cidr"
	effect := broad(peer)
	v := {
		"path": peer.path,
		"msg": sprintf("allows %s %s %s%s", [direction, data.netguard.lib.peer_word(direction), peer.description, effect]),
		"fix": sprintf("list the narrowest CIDRs of the hosts or subnets the workload needs (at most a /%v for IPv4, a /%v for IPv6, no whole private range), or select pods/namespaces%s", [
			max_prefix(4),
			max_prefix(6),
			hint(direction),
		]),
	}
}

broad(peer) := sprintf(": a /%v block (the limit for IPv%v is /%v) that covers the whole private %s %s", [
	peer.facts.prefix_len, peer.facts.family, max_prefix(peer.facts.family),
	range_word(peer), concat(", ", peer.facts.private_ranges),
]) if {
	too_wide(peer)
	count(peer.facts.private_ranges) > 0
} else := sprintf(": a /%v block, wider than the /%v limit for IPv%v", [
	peer.facts.prefix_len, max_prefix(peer.facts.family), peer.facts.family,
]) if {
	too_wide(peer)
} else := sprintf(", which covers the whole private %s %s with every node and internal service in it", [
	range_word(peer), concat(", ", peer.facts.private_ranges),
]) if {
	count(peer.facts.private_ranges) > 0
}

too_wide(peer) if peer.facts.prefix_len < max_prefix(peer.facts.family)

range_word(peer) := "range" if count(peer.facts.private_ranges) == 1

range_word(peer) := "ranges" if count(peer.facts.private_ranges) > 1

max_prefix(4) := object.get(input, ["parameters", "no-broad-cidr", "max_prefix_v4"], 8)

max_prefix(6) := object.get(input, ["parameters", "no-broad-cidr", "max_prefix_v6"], 32)

hint("egress") := " (Cilium: toEndpoints, or toFQDNs for outside services)"

hint("ingress") := " (Cilium: fromEndpoints that name the namespaces)"
