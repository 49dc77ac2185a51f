"""Connection strings: parse URLs and key=value DSNs, honour libpq env vars, never leak passwords."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from urllib.parse import quote, unquote, urlsplit

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from gameday.errors import ConfigError

_LIBPQ_ENV = {
    "host": "PGHOST",
    "port": "PGPORT",
    "user": "PGUSER",
    "password": "PGPASSWORD",
    "dbname": "PGDATABASE",
    "sslmode": "PGSSLMODE",
}


@dataclass(frozen=True)
class Dsn:
    host: str | None = None
    port: int | None = None
    user: str | None = None
    password: str | None = None
    dbname: str | None = None
    options: tuple[tuple[str, str], ...] = ()

    @classmethod
    def build(cls, **parts: object) -> Dsn:
        return cls(**parts)  # type: ignore[arg-type]

    @classmethod
    def parse(cls, text: str | None, *, use_env: bool = True) -> Dsn:
        """A postgres:// URL or key=value string; missing parts come from PG* env vars."""
        text = (text or "").strip()
        parts: dict[str, str] = {}
        if text.startswith(("postgres://", "postgresql://")):
            parts = _parse_url(text)
        elif text:
            try:
                parts = {k: str(v) for k, v in conninfo_to_dict(text).items()}
            except Exception:  # noqa: BLE001 - psycopg raises ProgrammingError with the text inside
                raise ConfigError(
                    f"DSN {redact_dsn(text)!r} is not a valid connection string",
                    fix="use postgresql://user:password@host:port/dbname or 'host=... dbname=...'",
                ) from None
        if use_env:
            for key, var in _LIBPQ_ENV.items():
                if key not in parts and os.environ.get(var):
                    parts[key] = os.environ[var]
        port = parts.pop("port", None)
        try:
            port_number = int(port) if port else None
        except ValueError:
            raise ConfigError(f"DSN port {port!r} is not a number", fix="e.g. postgresql://host:5432/db") from None
        known = {k: parts.pop(k, None) for k in ("host", "user", "password", "dbname")}
        return cls(port=port_number, options=tuple(sorted(parts.items())), **known)

    def with_database(self, dbname: str) -> Dsn:
        return replace(self, dbname=dbname)

    def conninfo(self) -> str:
        """The libpq form, with the password, for connecting."""
        params: dict[str, str | int] = {k: v for k, v in self._params().items() if isinstance(v, (str, int))}
        return make_conninfo("", **params)

    def libpq_env(self) -> dict[str, str]:
        """PG* variables for client tools, so passwords never appear on a command line."""
        env = {}
        for key, var in _LIBPQ_ENV.items():
            value = self._params().get(key)
            if value is not None:
                env[var] = str(value)
        return env

    def _params(self) -> dict[str, object]:
        return {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "dbname": self.dbname,
            **dict(self.options),
        }

    def __str__(self) -> str:
        """URL form, password included (for connecting; use .redacted() for text)."""
        return self._url(mask=False)

    def redacted(self) -> str:
        return self._url(mask=True)

    def _url(self, *, mask: bool) -> str:
        auth = ""
        if self.user:
            auth = quote(self.user, safe="")
            if self.password:
                auth += ":" + ("***" if mask else quote(self.password, safe=""))
            auth += "@"
        host = self.host or ""
        port = f":{self.port}" if self.port else ""
        query = "&".join(f"{k}={quote(v, safe='')}" for k, v in self.options)
        return f"postgresql://{auth}{host}{port}/{self.dbname or ''}" + (f"?{query}" if query else "")

def _parse_url(text: str) -> dict[str, str]:
    try:
        url = urlsplit(text)
        port = url.port  # raises ValueError on a bad port
    except ValueError:
        raise ConfigError(f"DSN {redact_dsn(text)!r} has an invalid host or port", fix="e.g. postgresql://host:5432/db") from None
    parts: dict[str, str] = {}
    if url.hostname:
        parts["host"] = url.hostname
    if port:
        parts["port"] = str(port)
    if url.username:
        parts["user"] = unquote(url.username)
    if url.password:
        parts["password"] = unquote(url.password)
    if url.path.strip("/"):
        parts["dbname"] = unquote(url.path.strip("/"))
    for item in filter(None, url.query.split("&")):
        key, _, value = item.partition("=")
        parts[key] = unquote(value)
    return parts


def redact_dsn(text: str) -> str:
    from gameday.journal import redact

    return redact(text)
