"""Reports over the facts alerts keeps (issue 15): pure functions, one module per report."""
