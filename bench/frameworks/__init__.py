"""One module per framework integration: the calls bench/integrations.py times."""
