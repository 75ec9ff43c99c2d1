"""Work on manifests and records: sources, `check`, `audit`, inventories, decision logs, baselines."""
