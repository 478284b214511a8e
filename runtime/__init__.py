"""Talk to a J-Moshi-style model: ``models`` (load files) → ``stepper`` (the batched model step over
the rows in use, with ``batch_views`` for compaction and ``sampling`` for per-session random
streams) → ``engine`` (sessions and the step loop in its own thread) → ``server`` (moshi websocket
protocol: ``admission`` for slots and the queue, ``connection`` for each client's loops,
``session_io``/``opus_worker`` for Opus and recordings, the bundled page in ``web/``; ``serving``
runs it until a stop signal, over https with ``tls``) or ``offline`` (wav in, stereo wav out). ``protocol`` holds the message kinds shared by
server, page and tests."""
