"""Bearer tokens of the receiver: a current and a previous one, read from files, reloaded on change.

Where it sits: ``server.py`` asks :meth:`Tokens.check` about every POST's
``Authorization`` header before it reads the body.

Alertmanager sends ``Authorization: Bearer <token>`` from
``http_config.authorization.credentials_file`` and never retries a 401, so a
rotation must drop nothing: both the current and the previous token are
accepted while both files hold one. The files are the keys of a mounted
Secret in a cluster; the kubelet swaps them atomically (a symlink), so each
check compares the files' stat signatures (one ``stat`` each, no read) and
reads a file again only when it changed: a rotation takes effect on the next
request, without a restart.

Comparison is in constant time (``hmac.compare_digest``) against both tokens,
always both, so timing tells nothing about either. A token never appears in a
log line or an answer.
"""

from __future__ import annotations

import enum
import hmac
import logging
import os
from pathlib import Path

__all__ = ["AuthResult", "TokenFile", "Tokens"]

logger = logging.getLogger("incidentops.intake")

MAX_TOKEN_BYTES = 4096


class AuthResult(enum.Enum):
    OK = "ok"
    MISSING = "missing"  # no Authorization header, or not a Bearer one
    INVALID = "invalid"  # a Bearer token that matches neither token
    UNAVAILABLE = "unavailable"  # the receiver has no token to compare with (files missing or empty)


class TokenFile:
    """One token file, read again whenever its (device, inode, size, mtime) changes.

    ``expected``: whether a missing or empty file is worth a warning. The current token's is; the
    previous token's is missing or empty whenever no rotation is under way, the normal case. An
    unreadable or oversized file is always worth one.
    """

    def __init__(self, path: Path, *, expected: bool = True) -> None:
        self.path = path
        self.expected = expected
        self._signature: tuple[int, int, int, int] | None = None
        self._token: bytes | None = None
        self._complained = False

    def get(self) -> bytes | None:
        """The token (surrounding whitespace stripped), or None when the file is missing, empty or unreadable."""
        try:
            st = os.stat(self.path)  # follows the Secret volume's ..data symlink
        except OSError as exc:
            absent = isinstance(exc, FileNotFoundError)
            self._forget(f"cannot read token file {self.path}: {exc.strerror}", normal=absent and not self.expected)
            return None
        signature = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        if signature != self._signature:
            try:
                raw = self.path.read_bytes()[: MAX_TOKEN_BYTES + 1]
            except OSError as exc:
                self._forget(f"cannot read token file {self.path}: {exc.strerror}")
                return None
            token = raw.strip()
            if len(raw) > MAX_TOKEN_BYTES:
                self._forget(f"token file {self.path} is larger than {MAX_TOKEN_BYTES} bytes")
                return None
            if self._signature is not None:
                logger.info("token file %s changed; the new token is in use", self.path)
            self._signature = signature
            self._token = token or None
            self._complained = False
            if not token and self.expected:
                logger.warning("token file %s is empty", self.path)
        return self._token

    def _forget(self, why: str, *, normal: bool = False) -> None:
        if not self._complained and not normal:
            logger.warning("%s", why)
            self._complained = True
        self._signature = None
        self._token = None


class Tokens:
    """The accepted bearer tokens: the current one and, during a rotation, the previous one."""

    def __init__(self, current: Path | None, previous: Path | None = None) -> None:
        self.files = [TokenFile(current)] if current is not None else []
        if previous is not None:
            self.files.append(TokenFile(previous, expected=False))

    @property
    def configured(self) -> bool:
        """Whether any token file is configured (without one the receiver does not run)."""
        return bool(self.files)

    def available(self) -> bool:
        """Whether at least one token can be read now (``/readyz``)."""
        return any(f.get() for f in self.files)

    def check(self, authorization: str | None) -> AuthResult:
        """Check an ``Authorization`` header value."""
        tokens = [t for t in (f.get() for f in self.files) if t]
        if not tokens:
            return AuthResult.UNAVAILABLE
        if not authorization:
            return AuthResult.MISSING
        scheme, _, given = authorization.strip().partition(" ")
        given = given.strip()
        if scheme.lower() != "bearer" or not given:
            return AuthResult.MISSING
        presented = given.encode("utf-8", "surrogateescape")
        matched = False
        for token in tokens:  # every token compared, whatever matched before
            matched |= hmac.compare_digest(presented, token)
        return AuthResult.OK if matched else AuthResult.INVALID
