"""Held-out evaluation: prior-skill success, new-task success, and KL between pi0 and pi on new-task states."""
