"""The model zoo: models beyond the detector, loaded on demand under one memory budget."""
