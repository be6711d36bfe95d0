"""Identity: resolves every channel event to one customer and serves the single customer view."""
