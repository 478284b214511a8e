"""Turn-taking analysis: per-channel voice activity and dGSLM-style statistics, shared by synth and
``jmoshi-augment stats``."""
