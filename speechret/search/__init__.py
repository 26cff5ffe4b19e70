"""Matchers: grouped 27-bit sliding matching (paper C §4.4)."""
