"""The household's decision on each event: alert rules and the armed mode."""
