"""The web console (``/console/``): server-rendered pages for compliance officers,
representatives and procurement officers, signed in with the My Number Card (or a
registration certificate) from a second device (``dairi client approve CODE``)."""
