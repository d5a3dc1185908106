"""The base: errors, clocks and permissions. Imports nothing else from core."""
