"""The dairi web service (see README, "Layout"): one subpackage per area of the domain."""
