"""Keys, DSSE envelopes, SSH signatures and the trusted-signer list."""
