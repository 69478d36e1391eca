"""Real framework runs (LLMProc, LogiLLM) traced by spanhooks.integrations.*."""
