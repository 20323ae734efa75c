"""Pseudonymisation of identities before anything is stored or scored.

Keyed HMAC-SHA256, so tokens are stable (baselines still work) but cannot be
reversed or recomputed without the key; /24 networks are tokenised separately
so "new network" novelty survives pseudonymisation.
"""

from __future__ import annotations

import hashlib
import hmac

from detector.events import Event


class Pseudonymiser:
    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("pseudonymisation key must be at least 16 bytes")
        self._key = key

    def token(self, kind: str, value: str) -> str:
        """
        >>> p = Pseudonymiser(b"k" * 16)
        >>> p.token("user", "alice") == p.token("user", "alice") != p.token("user", "bob")
        True
        >>> p.token("user", "alice").startswith("pn-")
        True
        """
        digest = hmac.new(self._key, f"{kind}\x1f{value}".encode(), hashlib.sha256).hexdigest()
        return f"pn-{digest[:20]}"

    def apply(self, ev: Event) -> Event:
        """Replace identities in place."""
        ev.entity = self.token("entity", ev.entity)
        ev.user_name = self.token("user", ev.user_name) if ev.user_name else None
        ev.user_id = self.token("user", ev.user_id) if ev.user_id else None
        ev.source_ip = self.token("ip", ev.source_ip) if ev.source_ip else None
        ev.network = self.token("net", ev.network) if ev.network else None
        return ev
