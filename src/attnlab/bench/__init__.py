"""Benchmarks run by `attnlab bench NAME`, one module each."""
