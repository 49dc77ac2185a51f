"""Rehearsal orchestrators: deploy, break, let the on-call act, measure, prove."""
