"""Token stage: Mimi codes per channel and text tokens placed on the 12.5 Hz grid."""
