"""modalc's compiler: Modal apps → Nomad job specs, and the backends that run them.

Runs on the client. See README.md in this folder for the pipeline and names.
"""
