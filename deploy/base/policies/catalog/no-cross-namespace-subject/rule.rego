package guardrails.no_cross_namespace_subject

import rego.v1

# Cilium confines a namespaced CiliumNetworkPolicy to the endpoints of its own namespace. An
# endpointSelector that names other namespaces selects nothing, or shows an attempt to govern
# another team's pods.

violation contains v if {
	input.policy.kind == "CiliumNetworkPolicy"
	some subject in input.policy.subjects
	subject.selects == "pods"
	subject.namespaces.scope == "named"
	some name in subject.namespaces.names
	name != input.policy.namespace
	v := {
		"path": subject.selector_path,
		"msg": sprintf("selects pods of namespace %s, but Cilium confines a CiliumNetworkPolicy in %s to %s's pods: the selector selects nothing or tries to govern another team's pods", [name, input.policy.namespace, input.policy.namespace]),
		"fix": fix,
	}
}

# In [a] together with In [b]: no namespace satisfies both.
violation contains v if {
	input.policy.kind == "CiliumNetworkPolicy"
	some subject in input.policy.subjects
	subject.selects == "pods"
	subject.namespaces.scope == "named"
	count(subject.namespaces.names) == 0
	v := {
		"path": subject.selector_path,
		"msg": "pins io.kubernetes.pod.namespace to values no namespace can have at once, so the policy selects no pods at all",
		"fix": fix,
	}
}

violation contains v if {
	input.policy.kind == "CiliumNetworkPolicy"
	some subject in input.policy.subjects
	subject.selects == "pods"
	subject.namespaces.scope in {"all", "selected"}
	keys := namespace_keys(subject)
	count(keys) > 0
	v := {
		"path": subject.selector_path,
		"msg": sprintf("selects pods by namespace (%s), but Cilium confines a CiliumNetworkPolicy in %s to %s's pods: the keys cannot reach other namespaces and signal an attempt to govern other teams' pods", [concat(", ", keys), input.policy.namespace, input.policy.namespace]),
		"fix": fix,
	}
}

namespace_keys(subject) := sort({r.key |
	some r in subject.selector.requirements
	namespace_key(r.key)
})

namespace_key(key) if key == "io.kubernetes.pod.namespace"

namespace_key(key) if startswith(key, "io.cilium.k8s.namespace.labels.")

fix := sprintf("remove the namespace keys from endpointSelector (the policy only applies to %s); for another namespace's pods, create the policy there or ask the platform team for a clusterwide policy", [input.policy.namespace])
