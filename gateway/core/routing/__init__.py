"""Routing: names to model groups, fallbacks between groups, and the choice of a deployment."""
