"""HTTP routes of the core: the OpenAI-compatible LLM routes, health, and admin information."""
