"""``dairi client approve CODE``: sign a browser in to the web console with the card
(the browser shows the code; this device holds the card)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from app.client.api import ApiClient, proof, unb64
from app.client.cards import Card


def approve_sign_in(client: ApiClient, card: Card, code: str) -> dict[str, Any]:
    """Open the login challenge of the console sign-in showing ``code`` and answer it
    with ``card``: ``sign_in`` (what was approved: code, when the browser asked, its
    user agent), ``caller`` and ``session_expires_at``."""
    path = f"/api/v1/console/sign-ins/{quote(code.strip(), safe='')}"
    opened = client.call("POST", f"{path}/challenge", auth=False)
    to_sign = unb64(opened["to_sign"], "a challenge")
    approved = client.call(
        "POST",
        f"{path}/approval",
        auth=False,
        json={"challenge_id": opened["id"], **proof(card, to_sign)},
    )
    return {"sign_in": opened["sign_in"], **approved}
