"""Enrichment of a window before its analysis: faces and known people, vehicle plates."""
