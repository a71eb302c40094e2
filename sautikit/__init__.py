"""Sautikit from roomc's side: a client for the calls API, and a local platform to rehearse on."""
