"""Issue 15: the reports alerts serves over the facts it keeps (store KPIs, attendance, value, CLV, satisfaction)."""
