"""Reports over the facts alerts keeps (issue 15): one module per report family, pure functions."""
