"""Checks of generated rows: their labels and how well they follow their attributed prompts."""
