"""The development time-stamping authority (RFC 3161), usable in process and over HTTP."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from datetime import datetime
from typing import ClassVar

from asn1crypto import algos, cms, core, tsp, x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from pyhanko.sign.timestamps.api import TimeStamper

# The project's UUID arc (DESIGN §5); .4.1 names the development TSA's policy.
DEV_TSA_POLICY = "2.25.320070894866931714170245613787843122496.4.1"

_DIGEST_SIZES = {"sha256": 32, "sha384": 48, "sha512": 64}
_HASHES = {"sha256": hashes.SHA256(), "sha384": hashes.SHA384(), "sha512": hashes.SHA512()}


class _RejectionResp(core.Sequence):
    """TimeStampResp without a token (asn1crypto's class makes the token mandatory)."""

    _fields: ClassVar = [("status", tsp.PKIStatusInfo)]


def _rejection(fail_info: str, text: str) -> bytes:
    return _RejectionResp(
        {
            "status": tsp.PKIStatusInfo(
                {
                    "status": "rejection",
                    "status_string": [text],
                    "fail_info": tsp.PKIFailureInfo({fail_info}),
                }
            )
        }
    ).dump()


class DevTsa:
    """Issues RFC 3161 time-stamp tokens signed with the development TSA key."""

    def __init__(
        self,
        certificate_der: bytes,
        key: rsa.RSAPrivateKey,
        chain_der: list[bytes],
        clock: Callable[[], datetime],
    ) -> None:
        self._cert_der = certificate_der
        self._key = key
        self._chain_der = chain_der
        self._clock = clock

    def respond(self, request_der: bytes) -> bytes:
        """Answer a DER ``TimeStampReq`` with a DER ``TimeStampResp`` (rejections included)."""
        try:
            request = tsp.TimeStampReq.load(request_der)
            imprint = request["message_imprint"]
            algorithm = imprint["hash_algorithm"]["algorithm"].native
            digest = imprint["hashed_message"].native
            nonce = request["nonce"].native
            want_certs = bool(request["cert_req"].native)
        except (ValueError, TypeError, KeyError):
            return _rejection("bad_data_format", "malformed TimeStampReq")
        if algorithm not in _DIGEST_SIZES:
            return _rejection("bad_alg", f"unsupported hash algorithm {algorithm}")
        if not isinstance(digest, bytes) or len(digest) != _DIGEST_SIZES[algorithm]:
            return _rejection("bad_data_format", "message imprint has the wrong length")
        return tsp.TimeStampResp(
            {
                "status": {"status": "granted"},
                "time_stamp_token": self._token(request, want_certs, nonce),
            }
        ).dump()

    def _token(
        self, request: tsp.TimeStampReq, want_certs: bool, nonce: int | None
    ) -> cms.ContentInfo:
        cert = x509.Certificate.load(self._cert_der)
        info = {
            "version": "v1",
            "policy": DEV_TSA_POLICY,
            "message_imprint": request["message_imprint"],
            "serial_number": secrets.randbits(63),
            "gen_time": self._clock(),
            "accuracy": {"seconds": 1},
            "tsa": x509.GeneralName(name="directory_name", value=cert.subject),
        }
        if nonce is not None:
            info["nonce"] = nonce
        tst_info = tsp.TSTInfo(info).dump()
        signed_attrs = cms.CMSAttributes(
            [
                cms.CMSAttribute({"type": "content_type", "values": ["tst_info"]}),
                cms.CMSAttribute(
                    {"type": "message_digest", "values": [hashlib.sha256(tst_info).digest()]}
                ),
                cms.CMSAttribute(
                    {
                        "type": "signing_certificate_v2",
                        "values": [
                            {"certs": [{"cert_hash": hashlib.sha256(self._cert_der).digest()}]}
                        ],
                    }
                ),
            ]
        )
        signature = self._key.sign(signed_attrs.dump(), padding.PKCS1v15(), hashes.SHA256())
        signer_info = cms.SignerInfo(
            {
                "version": "v1",
                "sid": {
                    "issuer_and_serial_number": {
                        "issuer": cert.issuer,
                        "serial_number": cert.serial_number,
                    }
                },
                "digest_algorithm": {"algorithm": "sha256"},
                "signed_attrs": signed_attrs,
                "signature_algorithm": {"algorithm": "sha256_rsa"},
                "signature": signature,
            }
        )
        certificates = [cert, *(x509.Certificate.load(c) for c in self._chain_der)]
        signed_data = {
            "version": "v3",
            "digest_algorithms": [algos.DigestAlgorithm({"algorithm": "sha256"})],
            "encap_content_info": {
                "content_type": "tst_info",
                "content": core.ParsableOctetString(tst_info),
            },
            "signer_infos": [signer_info],
        }
        if want_certs:
            signed_data["certificates"] = certificates
        return cms.ContentInfo(
            {"content_type": "signed_data", "content": cms.SignedData(signed_data)}
        )


class InProcessTimeStamper(TimeStamper):
    """pyHanko's client interface, answered by a :class:`DevTsa` without any network."""

    def __init__(self, tsa: DevTsa) -> None:
        super().__init__(include_nonce=True)
        self._tsa = tsa

    async def async_request_tsa_response(self, req: tsp.TimeStampReq) -> tsp.TimeStampResp:
        return tsp.TimeStampResp.load(self._tsa.respond(req.dump()))
