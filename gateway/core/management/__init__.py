"""The management API: keys, teams, users, end users. Every change is audited and evicts caches."""
