"""Reports over the facts alerts keeps: each part a pure module of exact arithmetic (issue 15)."""
