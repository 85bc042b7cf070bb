"""Tests of persistence/cli/."""
