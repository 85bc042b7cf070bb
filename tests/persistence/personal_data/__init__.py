"""Tests of persistence.personal_data."""
