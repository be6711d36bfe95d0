"""The console's pages: one module per area, each an APIRouter. A new area adds its router to ROUTERS and, if it
has a top-level page, one (path, label) line to NAV (the label marked with ``N_`` for the catalogues)."""

from services.console.i18n import N_
from services.console.pages import admin, admin_ops, alerts, auth, campaigns, customers, reports, rewards

ROUTERS = [auth.router, customers.router, alerts.router, campaigns.router, reports.router, rewards.router,
           admin.router, admin_ops.router]
NAV = [("/customers", N_("Customers")), ("/alerts", N_("Alerts")), ("/campaigns", N_("Campaigns")),
       ("/reports", N_("Reports"))]
