"""The updater plug-in interface: sets discovered by factories, conditional fetch, streaming parse.

An updater set factory (one per set name in `updaters.sets`, e.g. `alpine`) discovers the
updaters to run (e.g. `alpine-main-v3.16-updater`). An updater fetches its feed into a temporary
file only when it changed since the previous fingerprint, then parses that file into a stream of
Vulnerability records, so memory stays bounded whatever the feed size.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Final

import aiohttp

from clair_common.models import Vulnerability


class FeedError(Exception):
    """A feed that could not be fetched or parsed; the message names the feed and position."""


class ConfigProblem(ValueError):
    """Bad `updaters.config.<key>` contents."""


class _Unchanged:
    """The feed has not changed since the previous fingerprint: no new update operation."""

    _instance: ClassVar[_Unchanged | None] = None

    def __new__(cls) -> _Unchanged:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "Unchanged"


Unchanged: Final = _Unchanged()
UnchangedType = _Unchanged


@dataclass(slots=True)
class FetchResult:
    """A downloaded feed in a temporary file owned by the caller (call `discard`)."""

    path: Path
    fingerprint: str
    url: str

    def discard(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


class Updater(abc.ABC):
    """One feed. `version` is bumped when the records it produces change shape."""

    name: str
    version: str = "1"

    def configure(self, config: Mapping[str, Any]) -> None:  # noqa: B027 - optional hook
        """Apply `updaters.config.<updater name>`; the default accepts nothing to configure.

        Implementations read the block into their frozen dataclass with `_config.read_config`,
        which names the block and key of a bad value and warns about unknown keys.
        """

    @abc.abstractmethod
    async def fetch(
        self, client: aiohttp.ClientSession, prev_fingerprint: str
    ) -> FetchResult | _Unchanged: ...

    @abc.abstractmethod
    def parse(self, fetched: FetchResult) -> Iterator[Vulnerability]:
        """Yields records one at a time; raises FeedError naming the position of bad input.

        Runs in a worker thread (it is CPU work), so it must not touch the event loop.
        """


class UpdaterSetFactory(abc.ABC):
    """Builds the updaters of one set; may do network discovery and cache it between runs."""

    name: str

    def configure(self, config: Mapping[str, Any]) -> None:  # noqa: B027 - optional hook
        """Apply `updaters.config.<set name>` (read as `Updater.configure` says)."""

    @abc.abstractmethod
    async def updater_set(self, client: aiohttp.ClientSession) -> Sequence[Updater]: ...
