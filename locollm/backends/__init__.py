"Inference backends: the `Backend` protocol, llama.cpp (the embedded default), Ollama and transformers."
