"""The console's pages: one module per area, each an APIRouter; a new area adds its router here."""

from services.console.pages import alerts, auth, customers

ROUTERS = [auth.router, customers.router, alerts.router]
