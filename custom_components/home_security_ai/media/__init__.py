"""Snapshots and clips in the media folder: made, listed, served and deleted in time."""
