"""Certificates and private keys: generation, atomic secret files, caBundle installation."""
