"""Event declarations: an event's name, phase, arguments and how it maps to a span."""
