"""Policy: ordered, declarative rules (a versioned YAML file) that turn findings into a decision."""

from safeguard.policy.loader import default_policy_path, load_policy, parse_policy
from safeguard.policy.model import Policy, PolicyOutcome, Rule, evaluate

__all__ = [
    "Policy",
    "PolicyOutcome",
    "Rule",
    "default_policy_path",
    "evaluate",
    "load_policy",
    "parse_policy",
]
