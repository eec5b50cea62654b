"""What a platform shows the person who reported: the report's status and short advice, in their language.

Written by hand in each language (not machine-translated from one another), short enough for a
phone screen. The advice always starts with telling a trusted adult; it names CEOP (UK) and the
NCMEC CyberTipline (US), the reporter's country choosing one or both; reports about images of the
reporter themselves (self-generated, sextortion, CSAM) add Take It Down (NCMEC) and Report Remove
(Childline and the IWF); sextortion adds what to do about the threat. Pure data and functions, no IO.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

LOCALES = ("en", "es", "fr", "de")
#: the reporter-facing status of a report, from its case's status
STATUSES = ("received", "in_review", "action_taken", "reviewed")

LINKS = {
    "report_ceop": "https://www.ceop.police.uk/safety-centre/",
    "report_ncmec": "https://report.cybertip.org/",
    "take_it_down": "https://takeitdown.ncmec.org/",
    "report_remove": "https://www.childline.org.uk/report-remove/",
}

TEXT: dict[str, dict[str, str]] = {
    "en": {
        "received": "Thank you. We have your report and a trained moderator will look at it.",
        "in_review": "Thank you. A moderator is looking at your report now.",
        "action_taken": "Thank you. We looked at your report and have taken action.",
        "reviewed": "Thank you. We looked at your report.",
        "trusted_adult": "You are not in trouble. Tell an adult you trust, like a parent, carer or teacher, "
        "what happened.",
        "danger": "If you are in danger right now, call 999 in the UK or 911 in the US.",
        "report_ceop": "In the UK, you can report it to CEOP, part of the National Crime Agency.",
        "report_ncmec": "In the US, you can report it to the NCMEC CyberTipline, online or on 1-800-843-5678.",
        "take_it_down": "If it is a photo or video of you from when you were under 18, Take It Down can help "
        "get it removed.",
        "report_remove": "In the UK, Report Remove from Childline and the IWF can help get it taken down.",
        "sextortion": "If someone is threatening to share pictures of you, do not pay and do not send anything "
        "more. Keep the messages and block them.",
    },
    "es": {
        "received": "Gracias. Hemos recibido tu denuncia y una persona de nuestro equipo de moderación la revisará.",
        "in_review": "Gracias. Una persona de moderación está revisando tu denuncia.",
        "action_taken": "Gracias. Hemos revisado tu denuncia y hemos tomado medidas.",
        "reviewed": "Gracias. Hemos revisado tu denuncia.",
        "trusted_adult": "No has hecho nada malo. Cuéntale lo que ha pasado a un adulto de confianza, como tu "
        "madre, tu padre o un profesor.",
        "danger": "Si estás en peligro ahora mismo, llama al 112 en España, al 911 en EE. UU. y México o al "
        "999 en el Reino Unido.",
        "report_ceop": "En el Reino Unido puedes denunciarlo a CEOP, de la Agencia Nacional contra el Crimen.",
        "report_ncmec": "En EE. UU. puedes denunciarlo en la CyberTipline del NCMEC, por internet o en el "
        "1-800-843-5678.",
        "take_it_down": "Si es una foto o un vídeo tuyo de cuando tenías menos de 18 años, Take It Down te "
        "ayuda a que lo retiren.",
        "report_remove": "En el Reino Unido, Report Remove, de Childline y la IWF, te ayuda a que lo eliminen.",
        "sextortion": "Si alguien amenaza con compartir fotos tuyas, no pagues ni le envíes nada más. Guarda "
        "los mensajes y bloquea a esa persona.",
    },
    "fr": {
        "received": "Merci. Nous avons bien reçu ton signalement : une personne de notre équipe de modération "
        "va l'examiner.",
        "in_review": "Merci. Ton signalement est en cours d'examen.",
        "action_taken": "Merci. Nous avons examiné ton signalement et pris des mesures.",
        "reviewed": "Merci. Nous avons examiné ton signalement.",
        "trusted_adult": "Tu n'as rien fait de mal. Raconte ce qui s'est passé à un adulte de confiance : un "
        "parent, un proche ou un enseignant.",
        "danger": "Si tu es en danger maintenant, appelle le 17 ou le 112 en France, le 999 au Royaume-Uni ou "
        "le 911 aux États-Unis.",
        "report_ceop": "Au Royaume-Uni, tu peux le signaler au CEOP, rattaché à la National Crime Agency.",
        "report_ncmec": "Aux États-Unis, tu peux le signaler à la CyberTipline du NCMEC, en ligne ou au "
        "1-800-843-5678.",
        "take_it_down": "S'il s'agit d'une photo ou d'une vidéo de toi prise avant tes 18 ans, Take It Down "
        "peut t'aider à la faire retirer.",
        "report_remove": "Au Royaume-Uni, Report Remove (Childline et l'IWF) peut t'aider à la faire supprimer.",
        "sextortion": "Si quelqu'un menace de partager des photos de toi, ne paie pas et n'envoie plus rien. "
        "Garde les messages et bloque cette personne.",
    },
    "de": {
        "received": "Danke. Deine Meldung ist bei uns angekommen und wird von unserem Moderationsteam geprüft.",
        "in_review": "Danke. Deine Meldung wird gerade geprüft.",
        "action_taken": "Danke. Wir haben deine Meldung geprüft und etwas unternommen.",
        "reviewed": "Danke. Wir haben deine Meldung geprüft.",
        "trusted_adult": "Du hast nichts falsch gemacht. Erzähl einem Erwachsenen, dem du vertraust, was "
        "passiert ist, zum Beispiel deinen Eltern oder einer Lehrkraft.",
        "danger": "Wenn du gerade in Gefahr bist, ruf die 110 in Deutschland, die 999 in Großbritannien oder "
        "die 911 in den USA an.",
        "report_ceop": "In Großbritannien kannst du es bei CEOP melden, einer Stelle der National Crime Agency.",
        "report_ncmec": "In den USA kannst du es bei der CyberTipline des NCMEC melden, online oder unter "
        "1-800-843-5678.",
        "take_it_down": "Ist es ein Foto oder Video von dir aus der Zeit, als du unter 18 warst? Take It Down "
        "hilft dir, es entfernen zu lassen.",
        "report_remove": "In Großbritannien hilft dir Report Remove von Childline und der IWF, es löschen zu lassen.",
        "sextortion": "Wenn jemand droht, Bilder von dir zu verbreiten: Zahl nichts und schick nichts mehr. "
        "Speichere die Nachrichten und blockiere die Person.",
    },
}

_ABOUT_SELF = ("csam", "sextortion", "self_generated_minor")


@dataclass(frozen=True)
class AdviceItem:
    kind: str
    text: str
    url: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"kind": self.kind, "text": self.text}
        if self.url:
            d["url"] = self.url
        return d


def locale_of(value: str | None) -> str:
    """``es-MX``, ``fr_CA``, ``DE`` → a supported language; anything else → ``en``."""
    lang = (value or "").replace("_", "-").split("-", 1)[0].strip().lower()
    return lang if lang in LOCALES else "en"


def status_text(status: str, locale: str) -> str:
    return TEXT[locale_of(locale)][status]


def advice(reason: str, locale: str, country: str | None = None) -> list[AdviceItem]:
    """The reporter's advice for a report's reason, in ``locale``; ``country`` (ISO 3166, GB or US)
    narrows the reporting lines to that country's, any other or none gives both."""
    t = TEXT[locale_of(locale)]
    c = (country or "").upper()
    uk = c in ("", "GB", "UK") or c not in ("US",)
    us = c in ("", "US") or c not in ("GB", "UK")
    out = [AdviceItem("trusted_adult", t["trusted_adult"]), AdviceItem("danger", t["danger"])]
    if reason == "sextortion":
        out.append(AdviceItem("sextortion", t["sextortion"]))
    if uk:
        out.append(AdviceItem("report_ceop", t["report_ceop"], LINKS["report_ceop"]))
    if us:
        out.append(AdviceItem("report_ncmec", t["report_ncmec"], LINKS["report_ncmec"]))
    if reason in _ABOUT_SELF:
        if us:
            out.append(AdviceItem("take_it_down", t["take_it_down"], LINKS["take_it_down"]))
        if uk:
            out.append(AdviceItem("report_remove", t["report_remove"], LINKS["report_remove"]))
    return out
