"""The gateway: an OpenAI-compatible server that serves each live call with its task's adapter or the LLM, and logs
every call back into step 1. Start it with `make serve` or `agent-slm-gateway`."""
