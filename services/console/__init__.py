"""The ops console: server-rendered pages over the four services' HTTP APIs (issue 16)."""
