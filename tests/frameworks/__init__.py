"""Frameworks' own test suites, run against weft's implementations of their interfaces."""
