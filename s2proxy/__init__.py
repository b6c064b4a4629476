"""s2proxy: an analysing proxy for S2 (EN 50491-12-2) conversations between an RM and a CEM."""

__version__ = "0.1.0"
