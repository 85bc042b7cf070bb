"""Tests of persistence.database."""
