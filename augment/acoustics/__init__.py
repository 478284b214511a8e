"""The user's side as a microphone hears it: voice, room, echo, noise and capture chain applied to
the user's channel of each training view (see docs/acoustics.md)."""
