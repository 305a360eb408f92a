"""One module per dataset layout; each returns a :class:`engine.data.catalog.Catalog`."""
