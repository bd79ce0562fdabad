"""Spend: what each call cost, the spend log, and the counters on keys, teams, users, end users."""
