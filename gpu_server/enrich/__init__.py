"""Enrichment of a batch before its analysis: faces and known people, vehicle plates."""
