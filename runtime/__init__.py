"""Talk to a J-Moshi-style model: ``models`` (load files) → ``engine`` (batched streaming step loop in
its own thread) → ``server`` (moshi websocket protocol + the bundled page in ``web/``) or ``offline``
(wav in, stereo wav out). ``protocol`` holds the message kinds shared by server, page and tests."""
