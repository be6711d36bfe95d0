"""The alerts service: complaints, churn warning, moments of truth, routed to the owning store."""
