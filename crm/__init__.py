"""The ``crm`` command: run the platform, feed it, measure it."""
