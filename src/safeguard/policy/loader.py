"""Load and validate policy files; errors name the file, the place and what is wrong."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from safeguard import registry
from safeguard.errors import ConfigError
from safeguard.policy.model import Policy


def default_policy_path() -> Path:
    return Path(__file__).parent / "default.yaml"


def parse_policy(text: str, *, origin: str = "<policy>") -> Policy:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{origin}: not valid YAML: {exc}", code="invalid_policy") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{origin}: a policy is a mapping with 'version' and 'rules'", code="invalid_policy")
    try:
        policy = Policy.model_validate(raw)
    except ValidationError as exc:
        problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise ConfigError(
            f"{origin}: invalid policy:\n  " + "\n  ".join(problems), code="invalid_policy", details=problems
        ) from exc
    known = set(registry.actions.names())
    for rule in policy.rules:
        for a in rule.actions:
            if a.name not in known:
                raise ConfigError(
                    f"{origin}: rule {rule.name!r}: unknown action {a.name!r}; known: {sorted(known)}",
                    code="invalid_policy",
                )
    return policy


def load_policy(path: str | Path | None = None) -> Policy:
    p = Path(path) if path else default_policy_path()
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read policy file {p}: {exc}", code="invalid_policy") from exc
    return parse_policy(text, origin=str(p))
