"""Where a user is, for the EU's Digital Services Act: the optional ``territory`` of the scan and message APIs.

A platform tells Safeguard where the user it asks about is (an ISO 3166-1 alpha-2 country code, or
``EU`` when it only knows "somewhere in the Union"). Parsed strictly: two upper-case letters that ISO
3166-1 has assigned, or ``EU``; anything else (``uk``, ``GBR``, ``XK``, ``" DE"``) is a 422
``invalid_territory``, so a typo never silently drops a statement of reasons. The codes are ISO
3166-1's 249 officially assigned alpha-2 codes (as in the tz database's ``iso3166.tab``).
"""

from __future__ import annotations

from safeguard.errors import InvalidInput

__all__ = ["EEA", "EU_MEMBERS", "ISO_3166_ALPHA2", "in_eea", "parse_territory"]

_ISO_CODES = """
AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT
BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH
ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT
HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS
LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI
NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG
SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG
UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW
"""
#: ISO 3166-1 alpha-2: every officially assigned code
ISO_3166_ALPHA2 = frozenset(_ISO_CODES.split())
#: the 27 member states of the European Union
_EU_CODES = "AT BE BG CY CZ DE DK EE ES FI FR GR HR HU IE IT LT LU LV MT NL PL PT RO SE SI SK"
EU_MEMBERS = frozenset(_EU_CODES.split())
#: the European Economic Area, where the DSA applies: the EU and Iceland, Liechtenstein, Norway. The
#: Transparency Database's ``territorial_scope`` takes these codes (Greece is ``GR`` there, as in ISO).
EEA = EU_MEMBERS | {"IS", "LI", "NO"}


def parse_territory(value: object, *, field: str = "territory") -> str | None:
    """``None`` for an absent territory; the code for a valid one; else ``InvalidInput`` (422)."""
    if value is None:
        return None
    if not isinstance(value, str) or not (value == "EU" or value in ISO_3166_ALPHA2):
        raise InvalidInput(
            f"{field} must be an ISO 3166-1 alpha-2 country code in capitals (e.g. DE, FR) or EU, not {value!r}",
            code="invalid_territory",
            details={"field": field},
        )
    return value


def in_eea(territory: str | None) -> bool:
    """Whether a user in ``territory`` is covered by the DSA (an EU/EEA member state, or ``EU``)."""
    return territory is not None and (territory == "EU" or territory in EEA)
