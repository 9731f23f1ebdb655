"""dairi's API client: a small library (``ApiClient`` and the flows a person drives with
a card) and the ``dairi client`` command line over it (:mod:`app.client.cli`).

Usable from another machine with only the package installed: it talks HTTP to the
service and imports neither the database nor the service's HSM.
"""

from app.client.api import ApiClient, ClientError, proof, sign_grant
from app.client.cards import (
    Card,
    CardUnusable,
    Pkcs11Card,
    Pkcs11Location,
    SoftwareCard,
    directory_card,
    pkcs12_card,
    sign_cms,
)
from app.client.grants import GrantTerms, build_instruction, build_sub_instruction
from app.client.signing import (
    SignedFile,
    SigningRequest,
    Upload,
    check_to_sign,
    check_uploaded,
    run_session,
    sign_files,
    signed_path,
)
from app.client.subdelegation import sub_delegate

__all__ = [
    "ApiClient",
    "Card",
    "CardUnusable",
    "ClientError",
    "GrantTerms",
    "Pkcs11Card",
    "Pkcs11Location",
    "SignedFile",
    "SigningRequest",
    "SoftwareCard",
    "Upload",
    "build_instruction",
    "build_sub_instruction",
    "check_to_sign",
    "check_uploaded",
    "directory_card",
    "pkcs12_card",
    "proof",
    "run_session",
    "sign_cms",
    "sign_files",
    "sign_grant",
    "signed_path",
    "sub_delegate",
]
