"""The client's per-user state file: the service URL and the access token of the last
login (``~/.config/dairi/client.json``, mode 0600, its directory 0700).

The token is kept for the URL it was issued by and sent only there: pointing the client
at another service never hands it this one's token.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dairi import DairiError

DEFAULT_STATE = Path("~/.config/dairi/client.json")


class StateUnreadable(DairiError):
    code = "CLIENT_STATE_INVALID"


@dataclass(frozen=True)
class ClientState:
    url: str | None = None
    access_token: str | None = None
    expires_at: str | None = None
    caller_id: str | None = None

    def token_for(self, url: str) -> str | None:
        """The stored token if it was issued by ``url``."""
        return self.access_token if self.url == url.rstrip("/") else None


def state_path(given: Path | None) -> Path:
    return (given or DEFAULT_STATE).expanduser()


def load_state(path: Path) -> ClientState:
    """The state in ``path``; an empty one if there is no file."""
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ClientState()
    except OSError as exc:
        raise StateUnreadable(f"cannot read {path}") from exc
    try:
        data: Any = json.loads(raw)
        return ClientState(
            url=data.get("url"),
            access_token=data.get("access_token"),
            expires_at=data.get("expires_at"),
            caller_id=data.get("caller_id"),
        )
    except (ValueError, AttributeError) as exc:
        raise StateUnreadable(f"{path} is not a dairi client state file") from exc


def save_state(path: Path, state: ClientState) -> None:
    """Write ``state`` to ``path`` (0600), replacing it atomically."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(path.name + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(
            {
                "url": state.url,
                "access_token": state.access_token,
                "expires_at": state.expires_at,
                "caller_id": state.caller_id,
            },
            out,
            indent=2,
        )
        out.write("\n")
    os.replace(temporary, path)
