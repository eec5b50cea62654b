"""Sharing banks between Safeguard instances (docs/sharing.md).

Publishing (:mod:`~safeguard.exchange.feed`, :mod:`~safeguard.exchange.api`): a bank marked shareable
is served to the partner keys it is shared with as signed, incremental pages of its changes.
Subscribing (:mod:`~safeguard.exchange.follower`): a partner's feed is a hash-list source
(``safeguard.banks.sources.partner``) followed into a local bank by cursor; opinions on its entries go
back (:mod:`~safeguard.exchange.outbox`). The wire format is :mod:`~safeguard.exchange.wire`.
"""

from safeguard.exchange.wire import ExchangeError

__all__ = ["ExchangeError"]
