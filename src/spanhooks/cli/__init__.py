"""The spanhooks command and its demo."""
