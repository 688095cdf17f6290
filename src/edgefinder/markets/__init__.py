"""Futures research pipeline: ATLAS, physics, fractal discovery, playbook, forward pass, selection."""
