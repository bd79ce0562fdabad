"""Internals of the gateway. Plugins never import from here."""
