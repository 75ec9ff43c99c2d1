package netguard.lib_test

import rego.v1

# Rules as the input holds them (docs/input.md), with only the fields these helpers read.
rule(path, direction, action, effective, nothing) := {
	"path": path, "direction": direction, "action": action, "effective": effective,
	"matches_nothing": nothing, "any_peer": false, "peers": [{"description": "pods in namespaces team-b"}],
	"facts": {"internet_v4": false, "internet_v6": false, "internet_cidrs": []},
}

rules := [
	rule("spec.egress[0]", "egress", "allow", true, false),
	rule("spec.egress[1]", "egress", "deny", true, false),
	rule("spec.egress[2]", "egress", "allow", false, false), # a direction policyTypes leaves out
	rule("spec.egress[3]", "egress", "allow", true, true), # selects no traffic
	rule("spec.ingress[0]", "ingress", "allow", true, false),
]

paths(rs) := [r.path | some r in rs]

test_allow_rules_keeps_effective_allow_rules_of_one_direction if {
	paths(data.netguard.lib.allow_rules("egress")) == ["spec.egress[0]"] with input as {"policy": {"rules": rules}}
	paths(data.netguard.lib.allow_rules("ingress")) == ["spec.ingress[0]"] with input as {"policy": {"rules": rules}}
}

test_allow_rules_of_an_unknown_direction_is_empty_not_undefined if {
	data.netguard.lib.allow_rules("sideways") == [] with input as {"policy": {"rules": rules}}
}

test_rules_in_keeps_deny_rules_too if {
	paths(data.netguard.lib.rules_in("egress")) == ["spec.egress[0]", "spec.egress[1]"] with input as {"policy": {"rules": rules}}
}

test_no_rules_gives_empty_lists if {
	data.netguard.lib.allow_rules("egress") == [] with input as {"policy": {"rules": []}}
	data.netguard.lib.rules_in("ingress") == [] with input as {"policy": {"rules": []}}
}

test_words_follow_the_direction if {
	data.netguard.lib.peer_word("egress") == "to"
	data.netguard.lib.peer_word("ingress") == "from"
	data.netguard.lib.endpoint_word("egress") == "destination"
	data.netguard.lib.endpoint_word("ingress") == "source"
}

test_internet_family_names_the_families_covered if {
	data.netguard.lib.internet_family({"facts": {"internet_v4": true, "internet_v6": true}}) == "the whole IPv4 and IPv6 internet"
	data.netguard.lib.internet_family({"facts": {"internet_v4": true, "internet_v6": false}}) == "the whole IPv4 internet"
	data.netguard.lib.internet_family({"facts": {"internet_v4": false, "internet_v6": true}}) == "the whole IPv6 internet"
}

test_reach_says_what_a_rule_opens if {
	data.netguard.lib.reach({"direction": "egress", "any_peer": true}) == "every destination (the rule names no peers)"
	one := {"any_peer": false, "facts": {"internet_v4": true, "internet_v6": false, "internet_cidrs": ["0.0.0.0/0"]}}
	data.netguard.lib.reach(one) == "0.0.0.0/0, which covers the whole IPv4 internet"
	two := {"any_peer": false, "facts": {"internet_v4": true, "internet_v6": false, "internet_cidrs": ["0.0.0.0/1", "128.0.0.0/1"]}}
	data.netguard.lib.reach(two) == "0.0.0.0/1 and 128.0.0.0/1, which together cover the whole IPv4 internet"
	data.netguard.lib.reach(rules[0]) == "pods in namespaces team-b"
}

test_pins_needs_exactly_one_value if {
	selector := {"requirements": [
		{"key": "app", "operator": "In", "values": ["web"]},
		{"key": "tier", "operator": "In", "values": ["a", "b"]},
	]}
	data.netguard.lib.pins(selector, "app", "web")
	not data.netguard.lib.pins(selector, "tier", "a")
	not data.netguard.lib.pins(selector, "app", "db")
}

test_rule_at_finds_a_rule_by_its_path if {
	data.netguard.lib.rule_at("spec.ingress[0]").direction == "ingress" with input as {"policy": {"rules": rules}}
	not data.netguard.lib.rule_at("spec.ingress[9]") with input as {"policy": {"rules": rules}}
}

test_the_requester_is_the_platform_only_when_the_input_says_so if {
	data.netguard.lib.requester_is_platform with input as {"requester": {"platform": true, "username": "root"}}
	not data.netguard.lib.requester_is_platform with input as {"requester": {"platform": false, "username": "alice"}}
	data.netguard.lib.requester_name == "alice" with input as {"requester": {"platform": false, "username": "alice"}}
}

test_language_follows_flavor_and_tier if {
	data.netguard.lib.language == "networkpolicy" with input as {"policy": {"flavor": "kubernetes", "tier": ""}}
	data.netguard.lib.language == "cilium" with input as {"policy": {"flavor": "cilium", "tier": ""}}
	data.netguard.lib.language == "npapi" with input as {"policy": {"flavor": "kubernetes", "tier": "Baseline"}}
	data.netguard.lib.language == "calico" with input as {"policy": {"flavor": "calico", "tier": "default"}}
}

test_say_falls_back_to_the_networkpolicy_phrase if {
	phrases := {"networkpolicy": "ipBlock", "calico": "nets"}
	data.netguard.lib.say(phrases) == "nets" with input as {"policy": {"flavor": "calico", "tier": "default"}}
	data.netguard.lib.say(phrases) == "ipBlock" with input as {"policy": {"flavor": "cilium", "tier": ""}}
}
