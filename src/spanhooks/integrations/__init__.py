"""The real frameworks agent code runs on (llmproc, logillm...), each traced in one line."""
