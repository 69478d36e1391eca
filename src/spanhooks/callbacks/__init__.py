"""Registering and calling callbacks: the dispatch core, the event registry, the manager."""
