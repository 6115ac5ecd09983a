"""The pure core: parsing, models, replies. Imports nothing from AWS or the network."""
