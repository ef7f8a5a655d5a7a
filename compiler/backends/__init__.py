"""Backends that run compiled jobs: local processes or a Nomad cluster. Runs on the client."""
