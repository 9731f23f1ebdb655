"""Verification of signed documents for relying parties (DESIGN §7): the API and the
command line over :mod:`signing.verification`."""
