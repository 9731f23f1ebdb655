"""Where the HSM is and how to log in to it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from hsm.errors import PinIncorrect


@dataclass(frozen=True)
class HsmConfig:
    """PKCS#11 module, token and PIN source.

    The PIN comes from an environment variable or a file, never from code; it is
    read at login and not kept on this object (so it cannot leak through a repr).
    """

    module_path: str
    token_label: str
    pin_env: str = "DAIRI_HSM_PIN"
    pin_file: str | None = None

    def read_pin(self) -> str:
        """Return the user PIN; raises :class:`PinIncorrect` if none is configured."""
        pin = os.environ.get(self.pin_env)
        if pin:
            return pin
        if self.pin_file:
            path = Path(self.pin_file)
            if path.is_file():
                pin = path.read_text(encoding="utf-8").strip()
                if pin:
                    return pin
        raise PinIncorrect(
            f"no HSM user PIN configured (set {self.pin_env} or a PIN file)"
        )
