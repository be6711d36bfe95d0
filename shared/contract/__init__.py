"""The cross-service contract: channel events, the messages services send each other, topics, view parts, facts."""
