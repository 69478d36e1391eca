"""Traced calls from code not written against emit(): decorators and other instrumentations."""
