"""Model providers: how one deployment is called. OpenAI-compatible HTTP, and the built-in fake."""
