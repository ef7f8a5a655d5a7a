"""modalc test suite."""
