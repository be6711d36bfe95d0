"""Reports over the facts alerts keeps (issue 15): store KPIs, attendance, customer value, CLV, satisfaction."""
