"""Passwords, tokens, TOTP, the credential vault, IP allowlists and login throttling."""
