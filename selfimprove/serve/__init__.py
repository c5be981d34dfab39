"""`selfimprove serve`: the transformers backend behind an OpenAI-compatible /v1/completions endpoint."""
