"""Code the four services share, by kind: the cross-service contract, streaming, storage, observability, HTTP."""
