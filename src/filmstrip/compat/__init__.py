"""Where Filmstrip relies on a library's internals, for a measured gain: one module per
library, naming the release it was read from, and a test in ``tests/compat/`` that fails
loudly when the library changes. Everything else uses libraries through their public API.
"""
