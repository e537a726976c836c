"""A service's database: the `database` block of Clair 4.8 and later beside the older
`connstring` (Clair's `config/database.go`).

    indexer:
      database:
        name: postgresql
        migrations: true          # optional; when given, wins over the section's `migrations`
        postgresql:
          dsn: host=db user=clair dbname=clair

With both given, `database` is used and `connstring` ignored, as Clair does (a lint warning says
so). PostgreSQL is the only database: any other `name` is an error.
"""

from __future__ import annotations

from typing import Literal

from pydantic import field_validator, model_validator

from clair_common.config.base import ConfigModel, config_problem

__all__ = ["Database", "DatabasePostgreSQL", "DatabaseSection"]


class DatabasePostgreSQL(ConfigModel):
    # libpq DSN or URL (the same forms as `connstring`); "" means libpq's PG* environment.
    dsn: str = ""


class Database(ConfigModel):
    name: str
    migrations: bool | None = None
    postgresql: DatabasePostgreSQL | None = None

    @field_validator("name")
    @classmethod
    def _postgresql(cls, value: str) -> str:
        if value == "postgres":
            raise config_problem('unknown database "postgres" (did you mean "postgresql"?)')
        if value != "postgresql":
            raise config_problem(f'unknown database "{value}": only "postgresql" is supported')
        return value


class DatabaseSection(ConfigModel):
    """The keys naming a service's database, common to `indexer`, `matcher` and `notifier`."""

    # libpq DSN or URL; "" means libpq PG* environment (see `resolve_connstring`).
    connstring: str = ""
    database: Database | None = None
    migrations: bool = False

    @model_validator(mode="after")
    def _database_migrations(self) -> DatabaseSection:
        if self.database is not None and self.database.migrations is not None:
            self.migrations = self.database.migrations
        return self

    @property
    def dsn_key(self) -> Literal["database.postgresql.dsn", "connstring"]:
        """The key, within the section, that names the database in use."""
        return "connstring" if self.database is None else "database.postgresql.dsn"

    @property
    def dsn(self) -> str:
        """The connection string in use: `database.postgresql.dsn` when `database` is given
        (Clair then ignores `connstring`), else `connstring`."""
        if self.database is None:
            return self.connstring
        return self.database.postgresql.dsn if self.database.postgresql is not None else ""
