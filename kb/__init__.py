"""kb: an Obsidian study vault as a topic graph, an offline study site and runnable answers."""

__version__ = "0.1.0"
