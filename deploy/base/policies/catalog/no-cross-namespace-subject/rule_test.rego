package guardrails.no_cross_namespace_subject_test

import data.guardrails.no_cross_namespace_subject
import rego.v1

req(key, op, values) := {"key": key, "operator": op, "values": values}

subject(path, scope, names, reqs) := {
	"path": path, "selector_path": sprintf("%s.endpointSelector", [path]), "selects": "pods",
	"selector": {"empty": count(reqs) == 0, "requirements": reqs},
	"namespaces": {"scope": scope, "names": names},
}

doc(kind, subjects) := {"policy": {"kind": kind, "namespace": "team-a", "subjects": subjects, "rules": []}}

test_other_namespace_is_reported if {
	s := subject("spec", "named", ["team-b"], [req("io.kubernetes.pod.namespace", "In", ["team-b"])])
	some v in no_cross_namespace_subject.violation with input as doc("CiliumNetworkPolicy", [s])
	v.path == "spec.endpointSelector"
	contains(v.msg, "selects pods of namespace team-b")
	contains(v.msg, "confines a CiliumNetworkPolicy in team-a to team-a's pods")
}

test_own_and_other_namespace_reports_the_other if {
	s := subject("spec", "named", ["team-a", "team-b"], [req("io.kubernetes.pod.namespace", "In", ["team-a", "team-b"])])
	vs := no_cross_namespace_subject.violation with input as doc("CiliumNetworkPolicy", [s])
	count(vs) == 1
	some v in vs
	contains(v.msg, "team-b")
}

test_own_namespace_is_not_reported if {
	s := subject("spec", "named", ["team-a"], [req("io.kubernetes.pod.namespace", "In", ["team-a"])])
	count(no_cross_namespace_subject.violation) == 0 with input as doc("CiliumNetworkPolicy", [s])
}

test_no_namespace_key_is_not_reported if {
	s := subject("spec", "own", [], [req("app", "In", ["web"])])
	count(no_cross_namespace_subject.violation) == 0 with input as doc("CiliumNetworkPolicy", [s])
}

test_namespace_exists_in_specs_is_reported if {
	a := subject("specs[0]", "own", [], [])
	b := subject("specs[1]", "all", [], [req("io.kubernetes.pod.namespace", "Exists", [])])
	some v in no_cross_namespace_subject.violation with input as doc("CiliumNetworkPolicy", [a, b])
	v.path == "specs[1].endpointSelector"
	contains(v.msg, "selects pods by namespace (io.kubernetes.pod.namespace)")
}

test_namespace_labels_are_reported if {
	s := subject("spec", "selected", [], [req("io.cilium.k8s.namespace.labels.env", "In", ["prod"])])
	count(no_cross_namespace_subject.violation) == 1 with input as doc("CiliumNetworkPolicy", [s])
}

test_contradictory_pins_are_reported if {
	s := subject("spec", "named", [], [
		req("io.kubernetes.pod.namespace", "In", ["team-a"]),
		req("io.kubernetes.pod.namespace", "In", ["team-b"]),
	])
	some v in no_cross_namespace_subject.violation with input as doc("CiliumNetworkPolicy", [s])
	contains(v.msg, "selects no pods at all")
}

test_clusterwide_policy_is_not_reported if {
	s := subject("spec", "named", ["team-b"], [req("io.kubernetes.pod.namespace", "In", ["team-b"])])
	count(no_cross_namespace_subject.violation) == 0 with input as doc("CiliumClusterwideNetworkPolicy", [s])
}

test_node_selector_is_not_reported if {
	s := object.union(subject("spec", "all", [], []), {"selects": "nodes", "selector_path": "spec.nodeSelector"})
	count(no_cross_namespace_subject.violation) == 0 with input as doc("CiliumNetworkPolicy", [s])
}
