"Serving the swarm over HTTP (OpenAI and Ollama APIs), exports to multi-LoRA servers, load tests."
