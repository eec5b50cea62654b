"""Hash-list formats and exchanges: one module each, registered under ``safeguard.sources``."""
