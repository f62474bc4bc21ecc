"""`LocalPostgres`: a real throw-away PostgreSQL server on 127.0.0.1, ready for logical
decoding (Debezium's `pgoutput`), from the distribution's server binaries.

    with LocalPostgres() as pg:
        pg.execute("CREATE TABLE t (id int PRIMARY KEY)")
        pg.dsn        # postgresql://postgres@127.0.0.1:PORT/postgres
        pg.host, pg.port, pg.user, pg.database   # for a connector's database.* settings

Trust authentication on loopback (no password), `wal_level=logical`, replication slots and WAL
senders for a few connectors, no fsync (the data is thrown away by `stop()`).

initdb and postgres refuse to run as root; as root, both run as the `postgres` user (else
`nobody`), and the server's directory is a fresh temporary one that user owns.
"""

import contextlib
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self

from kgen.kafka.config import HOST
from kgen.kafka.net import free_ports
from kgen.kafka.process import die_with_parent, tail

SUPERUSER = "postgres"
DATABASE = "postgres"
_AUTO_PORT_ATTEMPTS = 3
_POLL_INTERVAL_S = 0.1

# Enough for a handful of Debezium connectors at once; fsync and friends off: the data is
# a test's and dies with it.
_SERVER_SETTINGS = {
    "listen_addresses": HOST,
    "wal_level": "logical",
    "max_replication_slots": "10",
    "max_wal_senders": "10",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}


class PostgresError(RuntimeError):
    """PostgreSQL is missing, did not start, or refused a statement."""


def find_bindir() -> Path:
    """The directory of `initdb` and `postgres`: `pg_config --bindir`, else the newest
    /usr/lib/postgresql/*/bin (Debian keeps them off PATH), else `initdb` on PATH."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            result = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=False
            )
            if result.returncode == 0 and result.stdout.strip():
                candidates.append(Path(result.stdout.strip()))
    versions = glob.glob("/usr/lib/postgresql/*/bin")
    candidates += sorted((Path(path) for path in versions), key=_version_key, reverse=True)
    initdb = shutil.which("initdb")
    if initdb is not None:
        candidates.append(Path(initdb).resolve().parent)
    for bindir in candidates:
        if all(os.access(bindir / tool, os.X_OK) for tool in ("initdb", "postgres", "psql")):
            return bindir
    raise PostgresError(
        "PostgreSQL's server binaries (initdb, postgres) were not found: install them "
        "(Debian: apt-get install postgresql)"
    )


def _version_key(bindir: Path) -> tuple[int, ...]:
    version = bindir.parent.name
    return tuple(int(part) for part in version.split(".") if part.isdigit())


class LocalPostgres:
    """A PostgreSQL server in a temporary directory, on a free loopback port; `stop()` removes
    it. Unix sockets go into that directory, never /var/run/postgresql."""

    def __init__(self, *, stop_with_parent: bool = True) -> None:
        self._stop_with_parent = stop_with_parent
        self._root: Path | None = None
        self._port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._bindir: Path | None = None

    @property
    def host(self) -> str:
        return HOST

    @property
    def user(self) -> str:
        return SUPERUSER

    @property
    def database(self) -> str:
        return DATABASE

    @property
    def port(self) -> int:
        """The server's port; only known once started."""
        if self._port is None:
            raise PostgresError("LocalPostgres has not been started")
        return self._port

    @property
    def dsn(self) -> str:
        """`postgresql://postgres@127.0.0.1:PORT/postgres` (no password: trust on loopback)."""
        return f"postgresql://{SUPERUSER}@{HOST}:{self.port}/{DATABASE}"

    @property
    def directory(self) -> Path:
        """The server's temporary directory: `data/`, `socket/` and `postgres.log`."""
        if self._root is None:
            raise PostgresError("LocalPostgres has not been started")
        return self._root

    @property
    def log_file(self) -> Path:
        """The server's log (its stderr)."""
        return self.directory / "postgres.log"

    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 60.0) -> str:
        """initdb a fresh cluster, start the server, wait until it accepts connections;
        return the DSN."""
        if self.is_running():
            return self.dsn
        bindir = self._bindir = find_bindir()
        deadline = time.monotonic() + timeout
        if self._root is None:
            self._root = self._make_root()
            self._run([str(bindir / "initdb"), *self._initdb_args()], "initdb", timeout)
        for attempt in range(1, _AUTO_PORT_ATTEMPTS + 1):
            self._port = free_ports(1)[0]
            offset = self.log_file.stat().st_size if self.log_file.exists() else 0
            self._launch(bindir)
            try:
                self._wait_ready(bindir, deadline, timeout)
            except PostgresError:
                self._terminate(10.0)
                lost_race = "could not bind" in self._log_since(offset)
                if attempt < _AUTO_PORT_ATTEMPTS and lost_race:
                    continue
                raise
            break
        return self.dsn

    def stop(self, timeout: float = 30.0) -> None:
        """Fast shutdown (open sessions and replication connections are cut), then remove
        the server's directory."""
        self._terminate(timeout)
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None
        self._port = None

    def execute(self, sql: str, timeout: float = 30.0) -> str:
        """Run `sql` (one or more statements) with psql as the superuser; return psql's
        unaligned, tuples-only output. Raises PostgresError with psql's message."""
        bindir = self._bindir or find_bindir()
        command = [
            str(bindir / "psql"),
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            HOST,
            "-p",
            str(self.port),
            "-U",
            SUPERUSER,
            "-d",
            DATABASE,
            "-c",
            sql,
        ]
        try:
            result = subprocess.run(
                command,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PostgresError(f"psql failed: {exc}") from exc
        if result.returncode != 0:
            raise PostgresError(f"psql: {result.stderr.strip() or result.stdout.strip()}")
        return result.stdout.strip()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _make_root(self) -> Path:
        root = Path(tempfile.mkdtemp(prefix="kgen-postgres-"))
        (root / "socket").mkdir()
        account = _server_account()
        if account is not None:
            uid, gid = account
            for path in (root, root / "socket"):
                os.chown(path, uid, gid)
        return root

    def _initdb_args(self) -> list[str]:
        return [
            "-D",
            str(self.directory / "data"),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--no-locale",
            "--no-sync",
        ]

    def _launch(self, bindir: Path) -> None:
        command = [
            str(bindir / "postgres"),
            "-D",
            str(self.directory / "data"),
            "-p",
            str(self.port),
            "-k",
            str(self.directory / "socket"),
        ]
        for key, value in _SERVER_SETTINGS.items():
            command += ["-c", f"{key}={value}"]
        account = _server_account()
        preexec = die_with_parent() if self._stop_with_parent else None
        with self.log_file.open("ab") as log:
            # The account switch happens before preexec_fn: the parent-death signal set there
            # survives it (a setuid clears that signal; exec of a plain binary does not).
            self._process = subprocess.Popen(
                command,
                cwd=self.directory,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=_server_env(),
                user=None if account is None else account[0],
                group=None if account is None else account[1],
                extra_groups=None if account is None else [],
                preexec_fn=preexec,  # noqa: PLW1509 - it only calls prctl(2), no locks
            )

    def _wait_ready(self, bindir: Path, deadline: float, timeout: float) -> None:
        probe = [str(bindir / "pg_isready"), "-q", "-h", HOST, "-p", str(self.port)]
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                code = None if self._process is None else self._process.returncode
                raise self._start_error(f"exited with code {code} while starting")
            with contextlib.suppress(subprocess.TimeoutExpired):
                if subprocess.run(probe, timeout=5, check=False).returncode == 0:
                    return
            time.sleep(_POLL_INTERVAL_S)
        raise self._start_error(f"did not accept connections on {HOST}:{self.port} in {timeout:g}s")

    def _run(self, command: list[str], what: str, timeout: float) -> None:
        account = _server_account()
        try:
            result = subprocess.run(
                command,
                cwd=self.directory,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
                env=_server_env(),
                user=None if account is None else account[0],
                group=None if account is None else account[1],
                extra_groups=None if account is None else [],
                check=False,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise PostgresError(f"{what} failed: {exc}") from exc
        if result.returncode != 0:
            output = (result.stdout + result.stderr).strip()
            raise PostgresError(f"{what} failed (exit {result.returncode}):\n{output}")

    def _terminate(self, timeout: float) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        # SIGINT is PostgreSQL's fast shutdown; SIGTERM (smart) would wait for every client,
        # and a connector's replication connection never leaves on its own.
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def _log_since(self, offset: int) -> str:
        try:
            with self.log_file.open("rb") as log:
                log.seek(offset)
                return log.read().decode(errors="replace")
        except OSError:
            return ""

    def _start_error(self, problem: str) -> PostgresError:
        return PostgresError(
            f"PostgreSQL {problem} (log: {self.log_file})\n{tail(self.log_file, 20)}"
        )


def _server_account() -> tuple[int, int] | None:
    """The (uid, gid) to run initdb and postgres as when we are root, else None."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            entry = pwd.getpwnam(name)
            return entry.pw_uid, entry.pw_gid
    raise PostgresError("running as root, but there is no `postgres` or `nobody` user to run as")


def _server_env() -> dict[str, str]:
    # The C locale whatever the caller's (initdb fails on a locale that is not installed);
    # HOME of an account that may not have one is no concern of the server's.
    return {**os.environ, "LC_ALL": "C", "LANG": "C"}
