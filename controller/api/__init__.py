"""The allocation API (Quart, served by hypercorn): CI jobs get workers and credentials here."""
