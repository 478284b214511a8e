"""Text stage: written dialogue to a spoken two-speaker script (normalisation, readings, fillers,
backchannels), with the optional LLM spoken-style rewrite before it."""
