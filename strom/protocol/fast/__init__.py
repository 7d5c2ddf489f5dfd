"""Hand-written codecs for the hot paths, each cross-checked against kio in
tests (tests/protocol/test_fast_*.py). kio stays the reference."""
