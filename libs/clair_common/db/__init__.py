"""PostgreSQL access shared by the services: pools, migrations, advisory locks."""
