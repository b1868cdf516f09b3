"""The synthetic city (who lives where, what happens) and its feed of replay lines."""
