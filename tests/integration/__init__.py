"""Tests for the Home Security AI integration."""
