"""What checking a kept key handle costs per signHash batch, against the search it replaces.

``Hsm.sign_digests`` keeps the private key (a PKCS#11 object handle) it found for the
next batches, and before each batch reads the object's class, CKA_ID, CKA_LABEL and key
type (``Hsm._still_the_key``: one python-pkcs11 ``get_attributes``) so that a handle the token gave
to another object since never signs. On a throw-away SoftHSM token, with python-pkcs11
directly in the Hsm's session, this prints the medians of:

- ``check``: ``Hsm._still_the_key`` on a kept key (the attribute read and comparison),
  and for comparison one attribute read alone (``key[Attribute.ID]``);
- ``search``: ``session.get_key`` by class, id and label, what ``Hsm._private_key``
  does and the kept handle saves (FindObjects, then python-pkcs11 reads the found
  object's class and capabilities);
- both on the token with only the two measured keys (``few``) and again after
  ``--keys`` other EC keys are generated (``many``: SoftHSM's search looks at every
  object, a real token holds a key per credential);
- one raw signature (ECDSA P-256 over a digest; RSA-2048 PKCS#1 v1.5 over a
  DigestInfo), for scale;
- ``Hsm.sign_digests`` with a batch of one digest: the handle kept (check + sign)
  against the key found afresh (search + sign, the kept keys forgotten before each),
  with the two measured keys on the token.

Each figure is the median of ``--rounds`` timings (default 2000; a quarter as many for
RSA signatures), each timing one call with ``time.perf_counter_ns`` after an untimed
warm-up. From the project root::

    python bench/hsm_handles.py [--json] [--rounds N] [--keys N]

With ``--json`` the last line is one JSON object (times in microseconds):
``{"rounds": …, "keys_on_token": …, "check_us": {"few": …, "many": …},
"one_attribute_us": …, "search_us": {"few": …, "many": …}, "sign_us": {"ec": …,
"rsa": …}, "batch1_us": {"ec": {"kept": …, "searched": …}, "rsa": {…}},
"check_of_search": …}`` (``check_of_search``: the check's share of a search, ``few``).
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `import hsm` etc. work
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
TOKEN_LABEL = "dairi-bench-handles"
PIN_ENV = "DAIRI_BENCH_HSM_PIN"  # not DAIRI_HSM_PIN: never a real token's PIN


def _median_us(call: Callable[[], Any], rounds: int) -> float:
    for _ in range(min(rounds, 20)):  # warm up, untimed
        call()
    times = []
    for _ in range(rounds):
        start = time.perf_counter_ns()
        call()
        times.append(time.perf_counter_ns() - start)
    return round(statistics.median(times) / 1000, 1)


def measure(module: str, rounds: int, other_keys: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="dairi-bench-handles-") as tmp:
        root = Path(tmp)
        os.environ["SOFTHSM2_CONF"] = str(root / "softhsm2.conf")  # before PKCS#11 loads
        os.environ.pop(PIN_ENV, None)
        from pkcs11 import Attribute, Mechanism, ObjectClass

        from hsm import Hsm, HsmConfig, KeyAlgorithm, SignatureScheme
        from hsm.device import digest_info
        from hsm.softhsm import ensure_softhsm_token, write_softhsm_conf

        write_softhsm_conf(root / "softhsm2.conf", root / "tokens")
        ensure_softhsm_token(root / "softhsm2.conf", TOKEN_LABEL, root / "user-pin")
        hsm = Hsm(HsmConfig(module, TOKEN_LABEL, pin_env=PIN_ENV, pin_file=str(root / "user-pin")))
        try:
            refs = {"ec": hsm.generate_key(KeyAlgorithm.EC_P256)}
            refs["rsa"] = hsm.generate_key(KeyAlgorithm.RSA_2048)
            schemes = {"ec": SignatureScheme.ECDSA, "rsa": SignatureScheme.RSA_PKCS1V15}
            digest = bytes(range(32))
            to_sign = {"ec": digest, "rsa": digest_info(digest, "sha256")}
            mechanisms = {"ec": Mechanism.ECDSA, "rsa": Mechanism.RSA_PKCS}
            rsa_rounds = max(20, rounds // 4)
            ref = refs["ec"]
            result: dict[str, Any] = {"rounds": rounds}

            def raw_figures(session: Any) -> dict[str, Any]:
                """python-pkcs11 calls timed one by one in one hold of the session."""

                def search() -> Any:
                    return session.get_key(
                        object_class=ObjectClass.PRIVATE_KEY, id=ref.cka_id, label=ref.cka_label
                    )

                kept = search()

                def check() -> None:
                    assert Hsm._still_the_key(kept, ref)

                return {
                    "check_us": _median_us(check, rounds),
                    "one_attribute_us": _median_us(lambda: kept[Attribute.ID], rounds),
                    "search_us": _median_us(search, rounds),
                }

            with hsm._session() as session:
                few = raw_figures(session)
                sign_us = {}
                for kind, kind_ref in refs.items():
                    key: Any = session.get_key(
                        object_class=ObjectClass.PRIVATE_KEY,
                        id=kind_ref.cka_id,
                        label=kind_ref.cka_label,
                    )

                    def raw_sign(key: Any = key, kind: str = kind) -> None:
                        key.sign(to_sign[kind], mechanism=mechanisms[kind])

                    sign_us[kind] = _median_us(raw_sign, rounds if kind == "ec" else rsa_rounds)

            batch1_us: dict[str, dict[str, float]] = {}
            for kind, kind_ref in refs.items():

                def kept_batch(kind_ref: Any = kind_ref, kind: str = kind) -> None:
                    hsm.sign_digests(kind_ref, [digest], scheme=schemes[kind])

                def searched_batch(kind_ref: Any = kind_ref, kind: str = kind) -> None:
                    hsm._signing_keys.clear()
                    hsm.sign_digests(kind_ref, [digest], scheme=schemes[kind])

                n = rounds if kind == "ec" else rsa_rounds
                batch1_us[kind] = {
                    "kept": _median_us(kept_batch, n),
                    "searched": _median_us(searched_batch, n),
                }

            for _ in range(other_keys):
                hsm.generate_key(KeyAlgorithm.EC_P256)
            result["keys_on_token"] = len(hsm.list_keys())
            with hsm._session() as session:
                many = raw_figures(session)
        finally:
            hsm.close()
    result.update(
        check_us={"few": few["check_us"], "many": many["check_us"]},
        one_attribute_us=few["one_attribute_us"],
        search_us={"few": few["search_us"], "many": many["search_us"]},
        sign_us=sign_us,
        batch1_us=batch1_us,
        check_of_search=round(few["check_us"] / few["search_us"], 2),
    )
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/hsm_handles.py")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--keys", type=int, default=200, help="other keys for the second search")
    parser.add_argument("--module", default=SOFTHSM_MODULE)
    args = parser.parse_args(argv)
    result = measure(args.module, args.rounds, args.keys)
    check, search, keys = result["check_us"], result["search_us"], result["keys_on_token"]
    print(
        f"kept-handle check (class, id, label, key type) {check['few']} µs with 2 keys on"
        f" the token, {check['many']} µs with {keys} (one attribute alone:"
        f" {result['one_attribute_us']} µs); search by class, id and label {search['few']} µs"
        f" with 2 keys, {search['many']} µs with {keys}; check = {result['check_of_search']}"
        " of a search with 2 keys"
    )
    for kind, batch in result["batch1_us"].items():
        print(
            f"{kind}: raw signature {result['sign_us'][kind]} µs; sign_digests batch of 1:"
            f" handle kept {batch['kept']} µs, key searched {batch['searched']} µs"
        )
    print(f"medians of {args.rounds} timings (RSA signatures: {max(20, args.rounds // 4)})")
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
