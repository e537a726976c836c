"""The one exception the config package raises."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["ConfigError"]


class ConfigError(Exception):
    """Every problem found in a config, one line each: `<source>: <key.path>: <what is wrong>`."""

    def __init__(self, problems: str | Iterable[str]) -> None:
        lines = [problems] if isinstance(problems, str) else list(problems)
        # One line per problem, whatever the underlying message looked like.
        self.problems: tuple[str, ...] = tuple(
            line.replace("\r\n", " ").replace("\n", " ").replace("\r", " ") for line in lines
        )
        super().__init__("\n".join(self.problems))

    def __str__(self) -> str:
        return "\n".join(self.problems)
