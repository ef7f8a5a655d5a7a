"""Helpers shared by ``examples/sibling_module.py``; shipped with its jobs."""
