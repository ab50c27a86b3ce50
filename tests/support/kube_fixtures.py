"""Placeholder: filled in by the matching work."""
