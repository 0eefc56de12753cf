"""A build that looks for wheels it was not given."""
