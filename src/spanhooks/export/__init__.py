"""Where finished spans go: the JSONL exporter and reader, accounting, replay, HTML pages."""
