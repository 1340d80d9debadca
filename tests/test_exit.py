"""How generate.py ends: main()'s status, every line printed, the atexit handlers run, and a reader that
stops reading gets no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import ROOT, generate_command


def test_the_process_ends_with_mains_status_after_the_other_atexit_handlers(tmp_path: Path) -> None:
    # A handler registered after generate.py's own (as a library would, on import) runs first, and
    # its output still reaches stdout: generate.py's last handler flushes before it ends the process.
    program = (
        "import atexit, runpy, sys\n"
        f"sys.argv = {generate_command('--quiet', '--env', 'dev', '--output', 'OUT')[1:]!r}\n"
        "try:\n"
        "    runpy.run_path(sys.argv[0], run_name='__main__')\n"
        "finally:\n"
        "    atexit.register(lambda: print('handler registered later: ran'))\n"
    )
    for env, status in (("dev", 0), ("qa", 2)):  # qa: no such environment file, refused with 2
        result = subprocess.run(
            [sys.executable, "-c", program.replace("'dev'", repr(env)).replace("'OUT'", repr(str(tmp_path / env)))],
            capture_output=True, text=True, cwd=ROOT, check=False,
        )  # fmt: skip
        assert result.returncode == status, result.stderr
        assert result.stdout == "handler registered later: ran\n"
        assert "Traceback" not in result.stderr


def test_a_reader_that_stops_reading_gets_status_141_and_no_traceback(tmp_path: Path) -> None:
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first line (as `generate.py | head -0`)
    try:
        result = subprocess.run(
            generate_command("--env", "dev", "--diagrams", "none", "--output", str(tmp_path / "out")),
            stdout=write, stderr=subprocess.PIPE, text=True, cwd=ROOT, check=False,
        )  # fmt: skip
    finally:
        os.close(write)
    assert result.returncode == 141  # 128 + SIGPIPE, as a shell reports it; 1, 2 and 3 mean other things
    assert result.stderr == ""  # neither a traceback nor Python's "Exception ignored" at exit
    # all or nothing: the summary is printed before the folders are swapped in, flushed after
    assert not (tmp_path / "out").exists() or (tmp_path / "out" / "dev" / "manifest.json").is_file()
