"""Benchmarks that print figures: run them by hand, read the numbers; they are not timed tests."""
