"""The Cloud Signature Consortium API (DESIGN §6; issue 12 item 2): ``/csc/v2/`` and the
v1.0.4 shapes pyHanko's ``CSCSigner`` speaks under ``/csc/v1/``, over the same signature
activation as the signing sessions (a SAD bought by a JPKI card proof over the exact
hashes, their count, the credential, the mandate and the purpose)."""
