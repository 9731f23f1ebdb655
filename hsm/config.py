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
    # Where a refused login is recorded, so that no process sharing this file tries
    # the refused PIN again (a real HSM locks the PIN after a few tries); None keeps
    # the record in this process only. See hsm.login.
    lockout_file: str | None = None

    def pin_source(self) -> str:
        """What names the PIN :meth:`read_pin` would return, without the PIN itself.

        The environment variable by name; the PIN file by path, inode, size and
        modification time, so that an edited PIN file is a new PIN worth one try.
        """
        if os.environ.get(self.pin_env):
            return f"env:{self.pin_env}"
        if self.pin_file:
            try:
                st = os.stat(self.pin_file)
            except OSError:
                return f"file:{self.pin_file}:absent"
            return f"file:{self.pin_file}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}"
        return "none"

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
        raise PinIncorrect(f"no HSM user PIN configured (set {self.pin_env} or a PIN file)")
