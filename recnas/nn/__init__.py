"""Fixed building blocks (embeddings, interactions, MLP) and the base-model zoo."""
