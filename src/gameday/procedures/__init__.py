"""Rollback procedures: one module each, each proving its own effect."""
