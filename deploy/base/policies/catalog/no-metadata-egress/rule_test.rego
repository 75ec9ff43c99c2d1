package guardrails.no_metadata_egress_test

import data.guardrails.no_metadata_egress as guardrail
import rego.v1

params := {"no-metadata-egress": {"addresses": ["169.254.169.254", "fd00:ec2::254"], "ports": [80]}}

peer(cidr, ips) := {"type": "cidr", "cidr": cidr, "description": cidr, "facts": {"metadata_ips": ips}}

tcp(port) := {"protocol": "TCP", "port": port, "end_port": null, "name": "", "all_ports": false}

rule(overrides) := object.union(
	{
		"path": "spec.egress[0]", "subject": 0, "direction": "egress", "action": "allow", "effective": true,
		"matches_nothing": false, "any_peer": false, "all_ports": true, "ports": [], "ports_label": "every port",
		"peers": [peer("169.254.0.0/16", ["169.254.169.254"])],
		"facts": {"metadata": ["169.254.169.254"]},
	},
	overrides,
)

run(rules) := {"parameters": params, "policy": {"rules": rules}}

test_link_local_range_on_every_port_is_reported_with_the_documented_message if {
	v := guardrail.violation with input as run([rule({})])
	count(v) == 1
	some finding in v
	finding.path == "spec.egress[0]"
	finding.msg == "reaches the cloud metadata address 169.254.169.254 through 169.254.0.0/16 on every port; credentials of the node's cloud identity are served there"
	contains(finding.fix, "169.254.169.254/32")
}

test_metadata_port_is_named if {
	r := rule({"all_ports": false, "ports": [tcp(80), tcp(443)], "ports_label": "TCP/80, TCP/443"})
	some finding in guardrail.violation with input as run([r])
	contains(finding.msg, "through 169.254.0.0/16 on TCP/80;")
}

test_port_range_over_the_metadata_port_is_named if {
	r := rule({
		"all_ports": false, "ports_label": "TCP/1-1024",
		"ports": [{"protocol": "TCP", "port": 1, "end_port": 1024, "name": "", "all_ports": false}],
	})
	some finding in guardrail.violation with input as run([r])
	contains(finding.msg, "on TCP/80;")
}

test_no_metadata_fact_is_not_reported if {
	r := rule({"all_ports": false, "ports": [tcp(443)], "facts": {"metadata": []}})
	count(guardrail.violation) == 0 with input as run([r])
}

test_ipv6_address_is_reported if {
	r := rule({"peers": [peer("fd00:ec2::/32", ["fd00:ec2::254"])], "facts": {"metadata": ["fd00:ec2::254"]}})
	some finding in guardrail.violation with input as run([r])
	contains(finding.msg, "address fd00:ec2::254 through fd00:ec2::/32")
	contains(finding.fix, "fd00:ec2::254/128")
}

test_both_addresses_through_world_are_one_finding if {
	r := rule({
		"peers": [{"type": "entity", "entity": "world", "description": "entity world", "facts": {"metadata_ips": ["169.254.169.254", "fd00:ec2::254"]}}],
		"facts": {"metadata": ["169.254.169.254", "fd00:ec2::254"]},
	})
	v := guardrail.violation with input as run([r])
	count(v) == 1
	some finding in v
	contains(finding.msg, "addresses 169.254.169.254 and fd00:ec2::254 through entity world on every port")
}

test_rule_without_destinations_is_reported if {
	r := rule({"any_peer": true, "peers": [], "all_ports": false, "ports": [tcp(80)], "ports_label": "TCP/80"})
	some finding in guardrail.violation with input as run([r])
	contains(finding.msg, "through a rule that names no destinations on TCP/80")
}

test_only_the_peers_that_reach_it_are_named if {
	r := rule({"peers": [peer("10.0.0.0/8", []), peer("169.254.0.0/16", ["169.254.169.254"])]})
	some finding in guardrail.violation with input as run([r])
	contains(finding.msg, "through 169.254.0.0/16 on")
	not contains(finding.msg, "10.0.0.0/8")
}

test_ingress_deny_and_ineffective_rules_are_not_reported if {
	rules := [
		rule({"direction": "ingress", "path": "spec.ingress[0]"}),
		rule({"action": "deny", "path": "spec.egressDeny[0]"}),
		rule({"effective": false}),
	]
	count(guardrail.violation) == 0 with input as run(rules)
}

deny(overrides) := rule(object.union({"path": "spec.egressDeny[0]", "action": "deny"}, overrides))

test_cilium_deny_of_the_address_removes_the_finding if {
	d := deny({"peers": [peer("169.254.169.254/32", ["169.254.169.254"])]})
	count(guardrail.violation) == 0 with input as run([rule({}), d])
}

test_deny_on_another_port_does_not_remove_the_finding if {
	d := deny({"all_ports": false, "ports": [tcp(443)], "facts": {"metadata": []}})
	count(guardrail.violation) == 1 with input as run([rule({}), d])
}

test_deny_in_another_spec_does_not_remove_the_finding if {
	d := deny({"subject": 1, "path": "specs[1].egressDeny[0]"})
	count(guardrail.violation) == 1 with input as run([rule({}), d])
}

test_deny_of_one_address_leaves_the_other if {
	r := rule({
		"peers": [{"type": "entity", "entity": "world", "description": "entity world", "facts": {"metadata_ips": ["169.254.169.254", "fd00:ec2::254"]}}],
		"facts": {"metadata": ["169.254.169.254", "fd00:ec2::254"]},
	})
	d := deny({"peers": [peer("169.254.169.254/32", ["169.254.169.254"])]})
	some finding in guardrail.violation with input as run([r, d])
	contains(finding.msg, "address fd00:ec2::254 through entity world")
}

deny_metadata := rule({"path": "spec.egress[0]", "action": "deny"})

allow_metadata := rule({"path": "spec.egress[1]"})

test_an_ordered_deny_before_the_allow_removes_the_finding if {
	count(guardrail.violation) == 0 with input as object.union(run([deny_metadata, allow_metadata]), {"policy": {"tier": "Admin"}})
}

test_an_ordered_deny_after_the_allow_does_not_remove_the_finding if {
	rules := [object.union(allow_metadata, {"path": "spec.egress[0]"}), object.union(deny_metadata, {"path": "spec.egress[1]"})]
	some v in guardrail.violation with input as object.union(run(rules), {"policy": {"tier": "Admin"}})
	v.path == "spec.egress[0]"
}

test_an_unordered_deny_after_the_allow_removes_the_finding if {
	rules := [object.union(allow_metadata, {"path": "spec.egress[0]"}), object.union(deny_metadata, {"path": "spec.egress[1]"})]
	count(guardrail.violation) == 0 with input as run(rules)
}
