"""The recent security events and incidents, kept under .storage."""
