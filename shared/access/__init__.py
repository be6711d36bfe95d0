"""Who may see whom: scopes (company, region, store), the stores registry, principals and their credentials."""
