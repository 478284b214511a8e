"""Output formats: writers for each trainer's layout, and the readers that verify and inspect them."""
