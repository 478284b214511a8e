"""Speech stage: TTS backends (segment-level and dialogue-level), the turn-taking planner, and the
stereo mixer."""
