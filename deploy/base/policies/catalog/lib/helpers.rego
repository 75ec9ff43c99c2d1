# Helpers shared by the guardrails. Everything here reads the normalized policy in
# input.policy (built in Python with API defaults and CIDR facts), never the raw manifest.
package netguard.lib

import rego.v1

# Allow rules of one direction that take effect: Kubernetes rules of a direction that
# policyTypes leaves out, and Cilium rules that select no traffic, allow nothing.
allow_rules(direction) := object.get(allowing, direction, [])

# Computed once per evaluation (a rule without arguments is evaluated once; a function is evaluated at each call).
allowing := {direction: rules |
	some direction in ["ingress", "egress"]
	rules := [rule |
		some rule in input.policy.rules
		rule.direction == direction
		rule.action == "allow"
		rule.effective
		not rule.matches_nothing
	]
}

# The policy language the object is written in, for fix texts that name its fields: "networkpolicy" (Kubernetes
# NetworkPolicy), "cilium", "npapi" (AdminNetworkPolicy, BaselineAdminNetworkPolicy, ClusterNetworkPolicy: the
# Kubernetes flavor with a tier) or "calico".
language := "cilium" if {
	input.policy.flavor == "cilium"
} else := "calico" if {
	input.policy.flavor == "calico"
} else := "npapi" if {
	input.policy.tier in {"Admin", "Baseline"}
} else := "networkpolicy"

# One phrase per language, falling back to the "networkpolicy" one (an unknown language keeps today's wording).
say(phrases) := object.get(phrases, language, phrases.networkpolicy)

peer_word(direction) := "to" if direction == "egress"

peer_word(direction) := "from" if direction == "ingress"

# Which part of the internet the rule's peers cover, for messages.
internet_family(rule) := "the whole IPv4 and IPv6 internet" if {
	rule.facts.internet_v4
	rule.facts.internet_v6
} else := "the whole IPv4 internet" if {
	rule.facts.internet_v4
} else := "the whole IPv6 internet"

# The peers of a rule in words, with their effect spelled out.
reach(rule) := sprintf("every %s (the rule names no peers)", [endpoint_word(rule.direction)]) if {
	rule.any_peer
} else := sprintf("%s, which together cover %s", [concat(" and ", rule.facts.internet_cidrs), internet_family(rule)]) if {
	count(rule.facts.internet_cidrs) > 1
} else := sprintf("%s, which covers %s", [rule.facts.internet_cidrs[0], internet_family(rule)]) if {
	count(rule.facts.internet_cidrs) == 1
} else := d if {
	# regorus cannot schedule a comprehension as a bare else value; bind it in a body.
	d := concat(", ", [p.description | some p in rule.peers])
}

endpoint_word(direction) := "destination" if direction == "egress"

endpoint_word(direction) := "source" if direction == "ingress"

# The requester is the platform team (config: platform.users/groups; GitOps controllers acting
# for a team's namespaces are not). Computed in Python into input.requester.
requester_is_platform if input.requester.platform

requester_name := sprintf("%s", [input.requester.username])

# Every rule of the policy in one direction that allows something.
rules_in(direction) := object.get(in_effect, direction, [])

# Once per evaluation, as `allowing`.
in_effect := {direction: rules |
	some direction in ["ingress", "egress"]
	rules := [rule |
		some rule in input.policy.rules
		rule.direction == direction
		rule.effective
		not rule.matches_nothing
	]
}

# A peer's label pinned to one value by its pod (endpoint) selector.
pins(selector, key, value) if {
	some req in selector.requirements
	req.key == key
	req.operator == "In"
	req.values == [value]
}

# The rule of the policy at a rule path (spec.egress[1], specs[0].ingress[2]).
rule_at(path) := rule if {
	some rule in input.policy.rules
	rule.path == path
}

# The rules of a combined reach (input.policy.facts.<direction>.combined_all_ports/_any_ports)
# in words, one per contributing rule: "spec.egress[0] (0.0.0.0/1 on TCP/443)".
combined_parts(reach) := [sprintf("%s (%s on %s)", [path, concat(", ", rule_at(path).facts.internet_cidrs), reach.ports[i]]) |
	some i, path in reach.rules
]
