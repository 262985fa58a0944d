"""A throwaway PostgreSQL server for tests and benchmarks: its own cluster in a temporary folder.

    with TempPostgres() as pg:
        store = SQLSessionStore(pg.create_database("t1"))

It needs PostgreSQL's server programs (Debian: `apt-get install postgresql`; `make test` installs
them). PostgreSQL refuses to run as root, so under root the cluster belongs to, and the server
runs as, the `postgres` system user. The server is stopped by its PID, and its folder removed,
when the block ends, also after a failure.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from llmos.errors import ConfigError

SERVER_USER = "postgres"


def find_bin() -> Path:
    """The folder of initdb and postgres: the newest /usr/lib/postgresql/*/bin, else the PATH's."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise ConfigError(
        "PostgreSQL's server programs (initdb, postgres) are not installed: run `make postgres` "
        "(apt-get install -y postgresql) or put them on the PATH."
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TempPostgres:
    """A PostgreSQL cluster in a temporary folder, on a free port of 127.0.0.1, trusting local connections."""

    def __init__(self, *, settings: dict[str, str] | None = None) -> None:
        self.bin = find_bin()
        self.settings = settings or {}
        self.folder: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0
        # As root, the cluster and server belong to the postgres user; otherwise to whoever runs this.
        self.as_user = SERVER_USER if os.geteuid() == 0 else None

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://llmos@127.0.0.1:{self.port}/{database}"

    def start(self) -> TempPostgres:
        self.folder = Path(tempfile.mkdtemp(prefix="llmos-pg-"))
        try:
            if self.as_user:
                entry = pwd.getpwnam(self.as_user)
                os.chown(self.folder, entry.pw_uid, entry.pw_gid)
            data = self.folder / "data"
            self._run([self.bin / "initdb", "-D", data, "-U", "llmos", "--auth=trust", "-E", "UTF8", "--no-sync"])
            self.port = free_port()
            options = {"listen_addresses": "127.0.0.1", "unix_socket_directories": str(self.folder), **self.settings}
            command = [str(self.bin / "postgres"), "-D", str(data), "-p", str(self.port)]
            for name, value in options.items():
                command += ["-c", f"{name}={value}"]
            log = open(self.folder / "server.log", "wb")  # noqa: SIM115 - the server writes it while it runs
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, user=self.as_user, group=self.as_user and self.as_user
            )
            log.close()
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _run(self, command: list[object]) -> None:
        done = subprocess.run(
            [str(c) for c in command], capture_output=True, text=True, user=self.as_user, group=self.as_user
        )
        if done.returncode != 0:
            raise RuntimeError(f"{command[0]} failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")

    def _wait_ready(self, timeout_s: float = 60.0) -> None:
        import psycopg

        assert self.process is not None
        deadline = time.monotonic() + timeout_s
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"PostgreSQL exited at start ({self.process.returncode}):\n{self.log()}")
            try:
                psycopg.connect(f"host=127.0.0.1 port={self.port} user=llmos dbname=postgres", connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"PostgreSQL did not accept connections in {timeout_s:g} s:\n{self.log()}") from None
                time.sleep(0.1)

    def log(self) -> str:
        path = self.folder / "server.log" if self.folder else None
        return path.read_text(errors="replace")[-3000:] if path and path.exists() else ""

    def create_database(self, name: str) -> str:
        """A new empty database; returns its URL."""
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=llmos dbname=postgres", autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        """Stop the server by its PID (immediate shutdown, then SIGKILL) and remove the folder."""
        if self.process is not None and self.process.poll() is None:
            # "Immediate" shutdown skips the final checkpoint: the cluster is thrown away next.
            self.process.send_signal(signal.SIGQUIT)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None

    def __enter__(self) -> TempPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
