"""modalc's runtime: the shim that runs inside every allocation, and the compat SDK.

Runs inside allocations (and its SDK also on the client). Imports only the
standard library and cloudpickle, so that it starts fast.
"""

# Bumped when the call protocol or the image layout changes; part of every
# built image's content hash.
RUNTIME_ABI = 1
