"""The optional LLM spoken-style rewrite: prompt, client with retries (``llm``), validation of
every answer (``validate`` with its ``reasons``, turn ``align``ment and ``script_check``), and the
on-disk answer cache."""
