"""Esports macro-strategy correlation analytics: ingest, features, tests, causal effects, API."""
