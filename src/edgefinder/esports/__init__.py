"""Esports macro-strategy correlation analytics (seed 000)."""
