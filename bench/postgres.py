"""A throwaway PostgreSQL cluster on loopback, for the tests and `bench.replicas`.

    with Cluster() as pg:          # initdb into a fresh temporary folder, start on a free port
        url = pg.create_database("arena")   # postgresql://postgres@127.0.0.1:<port>/arena

The server listens on 127.0.0.1 only, with its unix socket in the same temporary folder, and the
folder is removed when the cluster is. PostgreSQL refuses to run as root: as root (CI), initdb and
the server run as the `postgres` system user that Debian's package creates, and the folder is
given to that user. The binaries are Debian's (/usr/lib/postgresql/<version>/bin) or whatever
`initdb` is on the PATH.
"""

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import psycopg


class PostgresMissing(RuntimeError):
    """No PostgreSQL server binaries on this machine (or no user to run them as)."""


def server_bin() -> Path:
    """The folder holding initdb and pg_ctl: the newest Debian version, else the PATH's."""
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if debian:
        return debian[-1].parent
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise PostgresMissing("PostgreSQL is not installed (apt-get install postgresql)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    def __init__(self, fsync: bool = True):
        self.bin = server_bin()
        self.user = None
        if os.geteuid() == 0:
            try:
                self.user = pwd.getpwnam("postgres")
            except KeyError:
                raise PostgresMissing("running as root, and there is no postgres user to run the server as") from None
        self.root = Path(tempfile.mkdtemp(prefix="pg-cluster-"))
        self.data, self.log = self.root / "data", self.root / "server.log"
        if self.user:
            os.chown(self.root, self.user.pw_uid, self.user.pw_gid)
        self.port = free_port()
        self._run("initdb", "-D", self.data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C",
                  "--no-sync")
        settings = {"listen_addresses": "'127.0.0.1'", "port": self.port, "unix_socket_directories": f"'{self.root}'",
                    "fsync": "on" if fsync else "off", "max_connections": 200, "shared_buffers": "64MB"}
        with open(self.data / "postgresql.conf", "a") as f:
            f.writelines(f"{key} = {value}\n" for key, value in settings.items())
        self.start()

    def _run(self, tool: str, *args, timeout: float = 60):
        kwargs = {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []} if self.user else {}
        result = subprocess.run([str(self.bin / tool), *map(str, args)], capture_output=True, text=True,
                                timeout=timeout, cwd=self.root, **kwargs)
        if result.returncode != 0:
            raise RuntimeError(f"{tool} failed ({result.returncode}): {result.stderr.strip() or result.stdout.strip()}")
        return result

    def start(self):
        self._run("pg_ctl", "-D", self.data, "-l", self.log, "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast"):
        """Stop the server ("fast": disconnect every client; "immediate": like a crash)."""
        self._run("pg_ctl", "-D", self.data, "-m", mode, "-w", "-t", "60", "stop")

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, name: str) -> str:
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def remove(self):
        try:
            self.stop("immediate")
        except (RuntimeError, subprocess.TimeoutExpired):
            pass  # already stopped
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()

