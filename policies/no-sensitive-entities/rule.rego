package guardrails.no_sensitive_entities

import rego.v1

# Egress to Cilium entities that stand for the cluster's own infrastructure is for the
# platform team: nodes, the API server, Cilium health and not-yet-identified endpoints.

entities := e if {
	e := input.parameters["no-sensitive-entities"].entities
} else := ["host", "remote-node", "kube-apiserver", "health", "init"]

meaning := {
	"host": "the pod's own node (kubelet, host-network pods)",
	"remote-node": "every other node (kubelets, host-network pods)",
	"kube-apiserver": "the Kubernetes API server",
	"health": "Cilium's health endpoints on every node",
	"init": "endpoints whose identity is not known yet",
}

# peer.facts.infrastructure (webhook/core/facts.py) names the infrastructure identities a peer reaches,
# whatever the spelling: the entity itself, a `reserved:` endpoint selector (normalized to the
# entity), toNodes (host and remote-node) or toServices default/kubernetes (kube-apiserver).
violation contains v if {
	not data.netguard.lib.requester_is_platform
	some rule in data.netguard.lib.allow_rules("egress")
	some peer in rule.peers
	some entity in peer.facts.infrastructure
	lower(entity) in {lower(e) | some e in entities}
	v := {
		"path": peer.path,
		"msg": sprintf("allows egress on %s to %s, %s; only the platform team may allow that (%s: %s)", [
			rule.ports_label, target(peer, entity), object.get(meaning, entity, "part of the cluster's infrastructure"),
			who, why_not_platform,
		]),
		"fix": fix(entity),
	}
}

target(peer, entity) := sprintf("entity %s", [entity]) if {
	peer.type == "entity"
	peer.via == ""
} else := sprintf("entity %s (%s)", [entity, peer.via]) if {
	peer.type == "entity"
} else := sprintf("%s, that is entity %s", [peer.description, entity])

fix(entity) := "remove the entity; if the workload needs the API server, ask the platform team (it grants kube-apiserver on TCP/443 centrally)" if {
	entity == "kube-apiserver"
} else := data.netguard.lib.say({
	"networkpolicy": "remove the entity and name the pods or services the workload needs (toEndpoints/toServices); ask the platform team if the workload really needs this entity",
	"npapi": "remove the nodes peer and name the namespaces or pods the workload needs; ask the platform team if it really needs the nodes",
})

# Missing requester details (a caller that sends only the policy) must not silence the rule.
who := name if {
	name := input.requester.username
} else := "an unidentified requester"

why_not_platform := reason if {
	reason := input.requester.reason
} else := "not identified as the platform team"
