"""Tests of persistence.trace."""
