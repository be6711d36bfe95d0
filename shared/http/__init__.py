"""What every service HTTP API shares: auth gate, errors, documented statuses, bounds, rate limits."""
