"""Development tools for this checkout: an embedded PostgreSQL (`make run`), the local
distributed shape (`make up`) and the system packages the tests need (`make system-deps`).

A distribution of its own (`devtools/pyproject.toml`), installed into the development virtual
environment only: the service image does not carry it, and no service imports it.
"""
