"""The base: errors, clocks, permissions, settings and report records' JSON shape. Imports nothing else from core."""
