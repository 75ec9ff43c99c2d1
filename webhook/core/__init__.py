"""The pure core: the policy model, normalization, facts, decisions. No I/O, no web or cluster library."""
