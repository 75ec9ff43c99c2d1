"""Rego evaluation: the engines (regorus, OPA), the evaluator processes, the guardrail catalog loader."""
