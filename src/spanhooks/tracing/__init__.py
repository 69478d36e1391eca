"""Events to spans: what attributes may hold, open and closed spans, and call context."""
