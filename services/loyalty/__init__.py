"""The loyalty service: an exact points ledger, tiers, rewards, expiry and refunds."""
