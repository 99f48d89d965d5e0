"""Stateful sessions: a registry that outlives the process, and the live sandboxes it holds."""
