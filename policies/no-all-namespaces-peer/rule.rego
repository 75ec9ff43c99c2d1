package guardrails.no_all_namespaces_peer

import rego.v1

# Shared services (kube-dns by default) that every namespace may reach on their own ports.
shared_services := s if {
	s := input.parameters["no-all-namespaces-peer"].shared_services
} else := []

violation contains v if {
	some direction in ["ingress", "egress"]
	some rule in data.netguard.lib.allow_rules(direction)
	some peer in rule.peers
	matches_every_namespace(peer)
	not shared_service(rule, peer)
	v := {
		"path": peer.path,
		"msg": sprintf("allows %s on %s %s %s", [
			direction, rule.ports_label, data.netguard.lib.peer_word(direction), reach(peer),
		]),
		"fix": fix(rule, peer),
	}
}

# The model's fact: empty or open namespace selector, entity cluster/all.
matches_every_namespace(peer) if peer.facts.all_namespaces

# Cilium: Exists on the namespace-label form of kubernetes.io/metadata.name (every namespace
# carries it) is as open as Exists on io.kubernetes.pod.namespace, but the model reads it as
# a restricting selector (scope "selected"). Read it here until the fact covers it.
matches_every_namespace(peer) if {
	peer.type == "pods"
	input.policy.flavor == "cilium"
	peer.namespaces.scope == "selected"
	ns_reqs := [r |
		some r in peer.namespaces.selector.requirements
		namespace_key(r.key)
	]
	count(ns_reqs) > 0
	every r in ns_reqs {
		open_requirement(r)
	}
}

namespace_key(key) if key == "io.kubernetes.pod.namespace"

namespace_key(key) if startswith(key, "io.cilium.k8s.namespace.labels.")

open_requirement(r) if r.operator in {"NotIn", "DoesNotExist"}

open_requirement(r) if {
	r.operator == "Exists"
	r.key in {"io.kubernetes.pod.namespace", "io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name"}
}

# A pods peer pinned to a shared service's pod labels, on that service's ports only.
shared_service(rule, peer) if {
	peer.type == "pods"
	not rule.all_ports
	count(rule.ports) > 0
	count(rule.icmp) == 0
	some service in shared_services
	count(service.pod_labels) > 0
	every key, value in service.pod_labels {
		data.netguard.lib.pins(peer.pods, key, value)
	}
	every port in rule.ports {
		port.label in service.ports
	}
}

reach(peer) := sprintf("entity %s, which is every endpoint of every namespace (including ones created later) and every node", [peer.entity]) if {
	peer.entity == "cluster"
} else := "entity all, which is every endpoint of every namespace (including ones created later), every node and the internet" if {
	peer.entity == "all"
} else := sprintf("%s in %s", [pods_words(peer), namespace_words(peer)])

pods_words(peer) := sprintf("pods %s", [concat(", ", words)]) if {
	count(peer.pods.requirements) > 0
	words := [w |
		some r in peer.pods.requirements
		w := requirement_words(r)
	]
} else := "every pod"

namespace_words(peer) := sprintf("every namespace except %s, including ones created later", [concat(", ", peer.namespaces.names)]) if {
	count(peer.namespaces.names) > 0
} else := "every namespace, including ones created later"

requirement_words(r) := sprintf("%s=%s", [r.key, r.values[0]]) if {
	r.operator == "In"
	count(r.values) == 1
} else := sprintf("%s in (%s)", [r.key, concat(", ", r.values)]) if {
	r.operator == "In"
} else := sprintf("%s notin (%s)", [r.key, concat(", ", r.values)]) if {
	r.operator == "NotIn"
} else := sprintf("with %s", [r.key]) if {
	r.operator == "Exists"
} else := sprintf("without %s", [r.key])

fix(_, peer) := "replace the entity with toEndpoints/fromEndpoints that name the namespaces (io.kubernetes.pod.namespace: <ns>) and pods you need" if {
	peer.type == "entity"
} else := sprintf("limit the rule to the %s ports (%s), or name the namespaces the pods run in", [service.name, concat(", ", service.ports)]) if {
	some service in shared_services
	count(service.pod_labels) > 0
	every key, value in service.pod_labels {
		data.netguard.lib.pins(peer.pods, key, value)
	}
} else := "name the namespaces: namespaces.matchLabels {kubernetes.io/metadata.name: <ns>}, or pods with that namespaceSelector and a podSelector for the pods you need" if {
	# the network-policy-api kinds (AdminNetworkPolicy, ClusterNetworkPolicy, ...): namespaces / pods peers
	object.get(input.policy, "tier", "") in {"Admin", "Baseline"}
	input.policy.flavor == "kubernetes"
} else := "name the namespaces: namespaceSelector.matchLabels {kubernetes.io/metadata.name: <ns>} with a podSelector for the pods you need" if {
	input.policy.flavor == "kubernetes"
} else := "name the namespaces: add io.kubernetes.pod.namespace: <ns> to the selector's matchLabels, with the pod labels you need"
