"""Show the child a safety message: returned for the platform to display, never sent by the engine.

The advice follows what child-safety organisations tell children (UK CEOP/Thinkuknow, NCMEC
NetSmartz): it is not your fault; tell someone you trust; report it (CEOP for UK users); think before
you share. Templates are plain strings per locale so a platform can replace or add languages with
``params: {templates: {locale: text}}`` in its policy. Unknown locales fall back to English.
"""

from __future__ import annotations

from typing import Any

from safeguard.actions.base import ActionContext
from safeguard.actions.platform import PlatformAction
from safeguard.content import Action

TEMPLATES: dict[str, str] = {
    "en": (
        "Someone in this chat may be trying to trick or pressure you. It is not your fault. "
        "Tell a parent, carer, teacher or another adult you trust. You can block this person and report "
        "them here. If you are in the UK you can also report to CEOP at ceop.police.uk. "
        "Think before you share photos or personal details, and never meet someone you only know online "
        "without a trusted adult."
    ),
    "es": (
        "Puede que alguien en este chat esté intentando engañarte o presionarte. No es culpa tuya. "
        "Cuéntaselo a tu madre, padre, profesor u otro adulto de confianza. Puedes bloquear a esta persona "
        "y denunciarla aquí. Piensa antes de compartir fotos o datos personales."
    ),
    "fr": (
        "Quelqu'un dans cette discussion essaie peut-être de te piéger ou de te mettre la pression. "
        "Ce n'est pas de ta faute. Parles-en à un parent, un enseignant ou un adulte de confiance. "
        "Tu peux bloquer cette personne et la signaler ici. Réfléchis avant de partager des photos ou des "
        "informations personnelles."
    ),
    "de": (
        "Jemand in diesem Chat versucht vielleicht, dich zu täuschen oder unter Druck zu setzen. "
        "Das ist nicht deine Schuld. Erzähl es deinen Eltern, einer Lehrkraft oder einem anderen "
        "Erwachsenen, dem du vertraust. Du kannst diese Person blockieren und hier melden. Überleg gut, "
        "bevor du Fotos oder persönliche Daten teilst."
    ),
}


def render_safety_message(locale: str, params: dict[str, Any] | None = None) -> dict[str, str]:
    """The message for ``locale`` (e.g. ``fr`` or ``fr-CA``), from policy overrides or the built-ins."""
    templates = {**TEMPLATES, **((params or {}).get("templates") or {})}
    lang = (locale or "en").split("-")[0].split("_")[0].lower()
    chosen = lang if lang in templates else "en"
    return {"locale": chosen, "template": "grooming_safety/1", "text": templates[chosen]}


class SafetyMessage(PlatformAction):
    """Ask the platform to show the child a safety message (returned in the decision's answer)."""

    name = "safety_message"

    def run(self, action: Action, ctx: ActionContext) -> dict[str, Any]:
        locale = str(action.params.get("locale") or ctx.content.context.get("locale") or "en")
        msg = render_safety_message(locale, action.params)
        return {"performed_by": "platform", "recipients": list(ctx.content.context.get("minors", [])), **msg}
