# The contract between netguard and the guardrails (docs/input.md).
#
# netguard evaluates one query, data.netguard.findings, with input.rules naming the guardrail
# packages to run. Each guardrail lives in package guardrails.<id> and defines
# `violation contains {"path": ..., "msg": ..., "fix": ...}`.
package netguard

import rego.v1

findings[name] := data.guardrails[name].violation if {
	some name in input.rules
}
