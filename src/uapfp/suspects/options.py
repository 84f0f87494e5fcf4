"""Options of the remote backend, as a dataclass (no torch: the command line reads it for ``--help``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import ConfigError
from ..options import option

#: The options ``uapfp verify`` takes as flags.
HTTP_FLAGS = ("timeout", "retries", "concurrency", "rate_limit", "token_env", "batch_size", "output_name")


@dataclass(frozen=True)
class HttpOptions:
    """How :class:`~uapfp.suspects.http.HttpSuspect` talks to a server.

    ``retries`` further attempts follow a 429, 500, 502, 503 or 504, a timeout or a connection error, the
    first after ``backoff`` seconds, each next one after twice as long.
    """

    timeout: float = field(default=10.0, metadata=option("HTTP: seconds per request"))
    retries: int = field(default=5, metadata=option("HTTP: retries on 429, 500, 502-504, timeouts, connection errors"))
    backoff: float = 0.2
    concurrency: int = field(default=4, metadata=option("HTTP: requests in flight"))
    rate_limit: float | None = field(default=None, metadata=option("HTTP: requests per second"))
    token_env: str | None = field(
        default=None, metadata=option("HTTP: environment variable holding a bearer token", metavar="VAR")
    )
    batch_size: int = field(default=200, metadata=option("HTTP: images per request"))
    output_name: str | None = field(
        default=None, metadata=option("HTTP: the output to read, by name (default: the first (N, K) scores)")
    )
    metadata: bool = True
    #: the binary tensor data extension: None uses it when the server lists it (GET /v2)
    binary: bool | None = None

    def __post_init__(self) -> None:
        if not self.timeout > 0:
            raise ConfigError(f"--timeout must be positive, got {self.timeout}")
        if not self.backoff >= 0:
            raise ConfigError(f"--backoff must be >= 0, got {self.backoff}")
        if self.retries < 0 or self.concurrency < 1 or self.batch_size < 1:
            raise ConfigError("--retries must be >= 0, --concurrency and --batch-size >= 1")
        if self.rate_limit is not None and not self.rate_limit > 0:
            raise ConfigError(f"--rate-limit must be positive (requests per second), got {self.rate_limit}")
