"""Running a recipe: one-dialogue synthesis, units and resume, the run loop, executors, best-of-N."""
