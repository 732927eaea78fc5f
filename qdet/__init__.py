"""qdet."""
