"""The EU Digital Services Act: statements of reasons for restrictions on users in the EU/EEA, written with the
decision and sent to the Commission's Transparency Database (docs/dsa.md)."""

from safeguard.dsa.statements import CATEGORY, BuiltStatement, restrictions, statement_for
from safeguard.dsa.territory import EEA, EU_MEMBERS, in_eea, parse_territory

__all__ = [
    "CATEGORY",
    "EEA",
    "EU_MEMBERS",
    "BuiltStatement",
    "in_eea",
    "parse_territory",
    "restrictions",
    "statement_for",
]
