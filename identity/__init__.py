"""Identity: JPKI and commercial-registration certificate profiles, the 法人番号
check digit. (Trust, revocation and login follow.) A plain library."""
