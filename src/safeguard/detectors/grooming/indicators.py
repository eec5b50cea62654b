"""Stage indicators: small, readable patterns per grooming stage, in English, Spanish, French and German.

Why patterns at all, next to a trained model? Because a moderator must be told *why* a conversation
was flagged in words they can check ("asked whether the parents are home", "asked to keep it secret"),
and because patterns are fast (microseconds), deterministic and easy to extend per platform. The
semantic similarity in :mod:`.encoder` catches paraphrases the patterns miss; the model in
:mod:`.model` weighs both with the contact context.

The stages follow the grooming literature's usual sequence (rapport, risk assessment, exclusivity,
isolation, incentives, requests, sexualisation, pressure, meeting). Patterns match *normalised* text
(see :func:`normalise`): case-folded, accents removed, runs of a repeated letter shortened, so they are
written without accents.

The ``sexual`` stage uses a deliberately minimal, clinical lexicon of generic adult-content terms. It
is a lexicon, not example sentences, and nothing here or in the corpus describes sexual content.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

#: Stages in their usual order. The order matters for the escalation feature.
STAGES: tuple[str, ...] = (
    "rapport",
    "probing",
    "secrecy",
    "isolation",
    "gifts",
    "photos",
    "sexual",
    "pressure",
    "meeting",
)

STAGE_DESCRIPTIONS: dict[str, str] = {
    "rapport": "rapport building and flattery",
    "probing": "probing age, location or supervision",
    "secrecy": "secrecy and exclusivity",
    "isolation": "isolation or moving to another app or a private channel",
    "gifts": "gifts, money or in-game currency",
    "photos": "requests for photos, video or a webcam",
    "sexual": "sexual language towards a child",
    "pressure": "pressure, threats or sextortion",
    "meeting": "planning to meet in person",
}

_APPS = (
    r"(?:snap(?:chat)?|whats ?app|telegram|discord|insta(?:gram)?|kik|signal|skype|wickr|line|wechat|"
    r"tik ?tok|facetime|messenger|dms?|private chat|privado|prive|privat)"
)

# (stage, indicator) -> regexes. Written against normalised text: lower case, no accents.
_PATTERNS: dict[tuple[str, str], list[str]] = {
    # -- rapport and flattery ----------------------------------------------------------------
    ("rapport", "flattery"): [
        r"\byou(?:'re| are) (?:so |really |very )?(?:mature|special|beautiful|pretty|cute|gorgeous|smart) for\b",
        r"\byou(?:'re| are) (?:so |really |very )?mature\b",
        r"\b(?:so|really|very) mature for your age\b",
        r"\byou(?:'re| are) (?:not like|different from) (?:the )?other (?:girls|boys|kids)\b",
        r"\bno one (?:understands|gets) you like i do\b",
        r"\bi understand you better than\b",
        r"\beres (?:muy |tan )?madur[oa]\b",
        r"\bmadur[oa] para tu edad\b",
        r"\bnadie te entiende como yo\b",
        r"\btu es (?:si |tres |vraiment )?mature\b",
        r"\bmature pour ton age\b",
        r"\bpersonne ne te comprend comme moi\b",
        r"\bdu bist (?:so |sehr |echt )?(?:reif|erwachsen)\b",
        r"\breif fur dein alter\b",
        r"\bniemand versteht dich so wie ich\b",
    ],
    ("rapport", "special_bond"): [
        r"\bi(?:'ve| have) never (?:met|talked to) anyone like you\b",
        r"\byou(?:'re| are) my (?:favou?rite|best) (?:person|friend)\b",
        r"\bwe have (?:a )?special (?:connection|bond)\b",
        r"\btenemos una conexion especial\b",
        r"\bon a une connexion speciale\b",
        r"\bwir haben eine besondere verbindung\b",
    ],
    # -- probing age, location, supervision --------------------------------------------------
    ("probing", "age"): [
        r"\bhow old (?:are|r) (?:you|u)\b",
        r"\bwhat(?:'s| is) your age\b",
        r"\bwhat (?:grade|year|class) are you in\b",
        r"\b(?:asl|a/s/l)\b",
        r"\bcuantos anos tienes\b",
        r"\bque edad tienes\b",
        r"\bquel age as[- ]tu\b",
        r"\btu as quel age\b",
        r"\bwie alt bist du\b",
        r"\bin welche klasse gehst du\b",
    ],
    ("probing", "supervision"): [
        r"\b(?:are|r) (?:your|ur) (?:parents|mom|mum|dad|folks)(?: \w+)? (?:home|around|there|out|away|awake)\b",
        r"\b(?:is|are) (?:any ?one|some ?one|anybody|your parents) (?:else )?(?:home|with you|around|watching)\b",
        r"\bare you (?:home )?alone\b",
        r"\bwhen do (?:your|ur) parents (?:leave|go out|get home|go to (?:bed|sleep)|work)\b",
        r"\bdo (?:your|ur) parents (?:check|read|look at|monitor) (?:your|ur) (?:phone|messages|chats)\b",
        r"\bwho (?:else )?(?:uses|checks|sees) (?:your|this) (?:phone|computer|account)\b",
        r"\bestan tus padres\b",
        r"\b(?:estas|te quedas) sol[oa] en casa\b",
        r"\btus padres (?:revisan|miran|leen) tu (?:movil|telefono|celular)\b",
        r"\btes parents sont (?:la|a la maison|sortis)\b",
        r"\btu es seule? (?:a la maison|chez toi)\b",
        r"\btes parents (?:regardent|lisent|verifient) ton telephone\b",
        r"\bsind deine eltern (?:zu hause|da|weg)\b",
        r"\bbist du allein(?: zu hause)?\b",
        r"\bkontrollieren deine eltern dein handy\b",
    ],
    ("probing", "location"): [
        r"\bwhere do (?:you|u) live\b",
        r"\bwhat(?:'s| is) your (?:address|school|postcode|zip)\b",
        r"\bwhich school do (?:you|u) go to\b",
        r"\bdonde vives\b",
        r"\ba que (?:escuela|colegio) vas\b",
        r"\bou (?:est-ce que tu habites|habites[- ]tu|tu habites)\b",
        r"\bc'est quoi ton (?:ecole|college|adresse)\b",
        r"\bwo wohnst du\b",
        r"\bauf welche schule gehst du\b",
    ],
    # -- secrecy and exclusivity -------------------------------------------------------------
    ("secrecy", "keep_secret"): [
        r"\b(?:our|a|this is our|it's our) (?:little )?secret\b",
        r"\bkeep (?:this|it|us|that) (?:a )?(?:secret|between us|to yourself|quiet)\b",
        r"\bjust between (?:you and me|us)\b",
        r"\bnuestro secreto\b",
        r"\bqueda entre nosotros\b",
        r"\bnotre (?:petit )?secret\b",
        r"\bentre nous\b",
        r"\bunser (?:kleines )?geheimnis\b",
        r"\bbleibt unter uns\b",
    ],
    ("secrecy", "dont_tell"): [
        r"\bdon'?t tell (?:any ?one|anybody|your (?:parents|mom|mum|dad|friends|teacher)|them)\b",
        r"\b(?:nobody|no one) (?:needs|has) to know\b",
        r"\bdelete (?:our|these|the|this) (?:chat|messages|conversation|texts)\b",
        r"\bno (?:se lo )?(?:digas|cuentes) a (?:nadie|tus padres)\b",
        r"\bborra (?:los|nuestros) mensajes\b",
        r"\bne (?:le )?dis (?:rien )?a (?:personne|tes parents)\b",
        r"\befface (?:nos|les) messages\b",
        r"\bsag es (?:niemandem|nicht deinen eltern)\b",
        r"\bsag (?:niemandem|deinen eltern nichts)\b",
        r"\blosch (?:unsere|die) nachrichten\b",
    ],
    ("secrecy", "exclusivity"): [
        r"\b(?:they|your parents|your friends) (?:wouldn'?t|would not|won'?t) understand\b",
        r"\byou can only trust me\b",
        r"\bi(?:'m| am) the only one (?:who|that) (?:cares|understands)\b",
        r"\btus padres no lo entenderian\b",
        r"\btes parents ne comprendraient pas\b",
        r"\bdeine eltern wurden das nicht verstehen\b",
    ],
    # -- isolation / another app -------------------------------------------------------------
    ("isolation", "move_app"): [
        rf"\b(?:add|text|message|dm|call|find|hit) me (?:up )?on {_APPS}\b",
        rf"\blet'?s (?:talk|chat|move|continue|go|switch)(?: this)? (?:on|to|over to) {_APPS}\b",
        rf"\b(?:do you have|have you got|got|you on) (?:a )?{_APPS}\b",
        r"\bwhat(?:'s| is) your (?:snap|number|phone number|handle|username|whatsapp|insta)\b",
        r"\bsomewhere (?:more )?private\b",
        rf"\b(?:hablemos|sigamos) (?:por|en) {_APPS}\b",
        r"\bpasame tu (?:numero|snap|insta)\b",
        rf"\bajoute[- ]moi sur {_APPS}\b",
        rf"\bon (?:parle|continue) sur {_APPS}\b",
        r"\bdonne[- ]moi ton (?:numero|snap|insta)\b",
        rf"\bschreib mir (?:auf|bei|uber) {_APPS}\b",
        r"\bgib mir deine (?:nummer|handynummer)\b",
    ],
    ("isolation", "alienation"): [
        r"\byour (?:parents|friends|family) (?:don'?t|do not) (?:care about|understand|get) you\b",
        r"\byou don'?t need (?:them|your friends)\b",
        r"\btus padres no te (?:entienden|quieren)\b",
        r"\btes parents ne te comprennent pas\b",
        r"\bdeine eltern verstehen dich nicht\b",
    ],
    # -- gifts, money, in-game currency ------------------------------------------------------
    ("gifts", "currency"): [
        r"\b(?:i(?:'ll| will| can)|let me) (?:send|give|buy|get) (?:you|u) (?:some |free )?(?:robux|v-?bucks|gems|coins|skins?|credits|gift ?cards?|money|cash|a new phone|a phone)\b",
        r"\b(?:free|some) (?:robux|v-?bucks)\b",
        r"\bi(?:'ll| will) pay (?:you|for)\b",
        r"\bte (?:doy|regalo|mando|compro) (?:robux|pavos|v-?bucks|dinero|gemas|un movil)\b",
        r"\bje (?:te|t') ?(?:donne|offre|envoie|achete) (?:des )?(?:robux|v-?bucks|argent|gemmes|un telephone)\b",
        r"\bich (?:schenke|gebe|schicke|kaufe) dir (?:robux|v-?bucks|geld|ein handy)\b",
    ],
    ("gifts", "gift_offer"): [
        r"\b(?:i(?:'ll| will| can)|let me) (?:buy|get) you (?:a|an|something|anything)\b",
        r"\bi (?:bought|got) (?:you|u) a (?:present|gift)\b",
        r"\bsend me your address (?:so|and) i can send\b",
        r"\bte (?:compro|regalo) (?:algo|lo que quieras)\b",
        r"\bje t'?achete (?:quelque chose|ce que tu veux)\b",
        r"\bich kaufe dir (?:was|etwas|alles)\b",
    ],
    # -- photos, video, webcam (non-explicit wording) ----------------------------------------
    ("photos", "photo_request"): [
        r"\b(?:send|show) me (?:a |another |more |some )?(?:pic|pics|picture|pictures|photo|photos|selfie|selfies)\b",
        r"\bsend (?:a |another )?(?:pic|photo|selfie) (?:of you|of yourself)\b",
        r"\bcan i (?:see|have) (?:a |another )?(?:pic|picture|photo|selfie)\b",
        r"\bwhat do you look like\b",
        r"\b(?:mandame|enviame|pasame) (?:una |otra )?(?:foto|selfie)\b",
        r"\b(?:envoie|montre)[- ]moi (?:une |des )?(?:photos?|selfies?)\b",
        r"\b(?:schick|zeig) mir (?:ein |mal ein )?(?:foto|bild|selfie)\b",
    ],
    ("photos", "webcam"): [
        r"\b(?:turn on|put on|switch on|open) (?:your|ur|the) (?:cam|webcam|camera)\b",
        r"\b(?:video ?call|facetime|cam) (?:with )?me\b",
        r"\blet'?s (?:video ?chat|video ?call|facetime|cam)\b",
        r"\b(?:enciende|prende) (?:tu|la) (?:camara|webcam)\b",
        r"\ballume (?:ta|la) (?:camera|webcam)\b",
        r"\bmach (?:deine|die) (?:kamera|webcam) an\b",
    ],
    # -- sexual language: minimal clinical lexicon of generic adult-content terms ------------
    ("sexual", "adult_lexicon"): [
        r"\b(?:sexy|sexual|sex|nude|nudes|naked|undress(?:ed)?|lingerie)\b",
        r"\b(?:sexo|desnud[oa]s?)\b",
        r"\b(?:sexe|nue?s?|denude)\b",
        r"\b(?:sexuell|nackt|nacktbilder)\b",
    ],
    # -- pressure, threats, sextortion -------------------------------------------------------
    ("pressure", "threat_to_share"): [
        r"\b(?:i(?:'ll| will)|i'?m going to|gonna) (?:share|send|post|show|leak) (?:it|them|this|the (?:pics|photos|pictures|video)|your (?:pics|photos|pictures|video))\b",
        r"\b(?:everyone|your (?:parents|friends|school|family)) will see\b",
        r"\bunless you\b",
        r"\bor else\b",
        r"\b(?:voy a|lo voy a) (?:compartir|publicar|ensenar|mandar)\b",
        r"\ba menos que\b",
        r"\bje vais (?:la |les )?(?:partager|publier|montrer|envoyer)\b",
        r"\bsinon je\b",
        r"\bich werde (?:es|sie|die bilder) (?:teilen|posten|zeigen|schicken)\b",
        r"\bsonst (?:zeige|schicke|poste) ich\b",
    ],
    ("pressure", "guilt"): [
        r"\bif you (?:really )?(?:loved|liked|cared about) me\b",
        r"\byou owe me\b",
        r"\bafter (?:all|everything) i(?:'ve| have) (?:done|given|bought)\b",
        r"\bsi de verdad me quisieras\b",
        r"\bme lo debes\b",
        r"\bsi tu m'?aimais vraiment\b",
        r"\btu me le dois\b",
        r"\bwenn du mich wirklich (?:magst|liebst)\b",
        r"\bdu schuldest mir\b",
    ],
    ("pressure", "urgency"): [
        r"\b(?:do it|send it|answer) (?:now|right now)\b",
        r"\byou have (?:\d+|one|two|five|ten) (?:minutes|hours)\b",
        r"\btienes (?:\d+|cinco|diez) minutos\b",
        r"\btu as (?:\d+|cinq|dix) minutes\b",
        r"\bdu hast (?:\d+|funf|zehn) minuten\b",
    ],
    # -- planning to meet --------------------------------------------------------------------
    ("meeting", "meet_request"): [
        r"\b(?:we|let'?s|we should|we could|want to|wanna) (?:meet|hang out) (?:up )?(?:in person|irl|for real|sometime|this weekend|after school|tomorrow|somewhere)\b",
        r"\bmeet (?:me|up) (?:at|after|near|tomorrow|tonight|this)\b",
        r"\bi (?:can|could|will|'ll) (?:pick you up|come (?:to|and) (?:see|get) you|drive (?:over|to you))\b",
        r"\bwhere can we meet\b",
        r"\b(?:quedamos|nos vemos|veamonos) (?:en persona|manana|despues de clase|el sabado)\b",
        r"\bte (?:recojo|paso a buscar)\b",
        r"\bon se (?:voit|rejoint) (?:en vrai|demain|apres l'?ecole|samedi)\b",
        r"\bje (?:peux|viens) te chercher\b",
        r"\b(?:treffen wir uns|lass uns treffen|wollen wir uns treffen)\b",
        r"\bich hole dich ab\b",
    ],
    ("meeting", "travel_secret"): [
        r"\bdon'?t bring (?:any ?one|your friends)\b",
        r"\bcome alone\b",
        r"\bven sol[oa]\b",
        r"\bviens seule?\b",
        r"\bkomm allein\b",
    ],
}


@dataclass(frozen=True, slots=True)
class Hit:
    stage: str
    indicator: str
    start: int
    end: int


_COMPILED: list[tuple[str, str, re.Pattern[str]]] = [
    (stage, ind, re.compile("|".join(f"(?:{p})" for p in pats))) for (stage, ind), pats in _PATTERNS.items()
]
_REPEATS = re.compile(r"(\w)\1{2,}")
_SPACES = re.compile(r"\s+")


def normalise(text: str) -> str:
    """Case-fold, strip accents, shorten letter runs ("sooooo" → "soo"), collapse whitespace."""
    t = unicodedata.normalize("NFKD", text)
    t = "".join(c for c in t if not unicodedata.combining(c))
    t = t.casefold().replace("\u2019", "'").replace("ß", "ss")
    t = _REPEATS.sub(r"\1\1", t)
    return _SPACES.sub(" ", t).strip()


def find_hits(text: str, *, normalised: bool = False) -> list[Hit]:
    """Every (stage, indicator) whose pattern matches ``text``; at most one hit per indicator."""
    t = text if normalised else normalise(text)
    hits = []
    for stage, ind, rx in _COMPILED:
        m = rx.search(t)
        if m:
            hits.append(Hit(stage, ind, m.start(), m.end()))
    return hits


def indicator_names() -> list[str]:
    return [f"{s}.{i}" for (s, i) in _PATTERNS]
