"""Policy models and their I/O: the char GPT, Hugging Face and GGUF backends, tokenizers, generation."""
