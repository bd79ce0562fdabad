"""Core features that run through the same hooks as any plugin (virtual-key auth, audit store)."""
