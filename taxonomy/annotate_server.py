"""A local Label Studio server, run from its own virtual environment that reeng manages.

Label Studio pins Django, pyarrow, pytz and many more; installed beside reeng it would fight
reeng's own dependencies. So it lives in a separate environment: ``REENG_LABEL_STUDIO_ENV`` or
``--env``, by default ``<reeng cache>/label-studio-env``. ``reeng annotate install`` creates it
once; ``reeng annotate serve`` runs it; reeng itself only needs the small ``label-studio-sdk``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from reeng.errors import ReengError

LABEL_STUDIO_SPEC = "label-studio==1.23.2"
ENV_VARIABLE = "REENG_LABEL_STUDIO_ENV"
# Throwaway first user of the local servers the tests and benchmarks start (127.0.0.1, fresh data folder).
LOCAL_TEST_ADMIN = {"LABEL_STUDIO_USERNAME": "lead@example.org", "LABEL_STUDIO_PASSWORD": "lead-pass-2024",
                    "LABEL_STUDIO_USER_TOKEN": "reeng-test-token-0123456789abcdef"}
_INSTALLING = ".reeng-installing"  # present while an install runs or after one failed


def env_dir(path: Path | str | None = None) -> Path:
    """Where Label Studio's environment is: the given path, ``REENG_LABEL_STUDIO_ENV``, or the cache."""
    from reeng.settings import cache_dir

    value = path or os.environ.get(ENV_VARIABLE)
    return Path(value).expanduser() if value else cache_dir() / "label-studio-env"


def executable(env: Path) -> Path | None:
    """The ``label-studio`` program of a complete environment, else None (a half-finished install counts as none)."""
    exe = env / "bin" / "label-studio"
    return exe if exe.exists() and not (env / _INSTALLING).exists() else None


def install_hint(env: Path) -> str:
    return (f"Label Studio is not installed in {env}. Install it into its own environment with `reeng annotate install` "
            f"(a few minutes, about 1 GB; never into reeng's own environment), or point --env or {ENV_VARIABLE} at an "
            "environment that has it. Labeling sheets (`reeng annotate export` / `import`) work without it.")


def install(env: Path, spec: str = LABEL_STUDIO_SPEC, log: IO[str] | None = None) -> Path:
    """Create ``env`` with Label Studio (idempotent: a complete environment is left alone)."""
    found = executable(env)
    if found is not None:
        return found
    import venv

    env.mkdir(parents=True, exist_ok=True)
    (env / _INSTALLING).write_text(spec + "\n")
    if not (env / "bin" / "python").exists():
        venv.EnvBuilder(with_pip=True, clear=False).create(env)
    done = subprocess.run([str(env / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check", spec],
                          stdout=log or subprocess.DEVNULL, stderr=subprocess.STDOUT if log else subprocess.PIPE, text=True)
    if done.returncode != 0:
        tail = (done.stderr or "").strip().splitlines()[-1:] or ["see the log above"]
        raise ReengError(f"installing {spec} into {env} failed: {tail[0]}")
    (env / _INSTALLING).unlink()
    return env / "bin" / "label-studio"


def start(env: Path, data: Path, port: int, *, host: str = "127.0.0.1", extra_env: dict[str, str] | None = None,
          log: IO[str] | None = None) -> subprocess.Popen[bytes]:
    """Start Label Studio (SQLite, everything under ``data``) in its own process group; the caller stops it.

    The first user and its token come from ``LABEL_STUDIO_USERNAME`` / ``_PASSWORD`` / ``_USER_TOKEN``
    in the environment, never from the command line (which other users of the machine can read).
    """
    exe = executable(env)
    if exe is None:
        raise ReengError(install_hint(env))
    data.mkdir(parents=True, exist_ok=True)
    child_env = {**os.environ, **(extra_env or {}), "LABEL_STUDIO_BASE_DATA_DIR": str(data),
                 "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true"}
    cmd = [str(exe), "start", "--no-browser", "--data-dir", str(data), "--port", str(port), "--internal-host", host,
           "--log-level", "WARNING", "--enable-legacy-api-token"]
    return subprocess.Popen(cmd, env=child_env, stdout=log or subprocess.DEVNULL, stderr=subprocess.STDOUT,
                            start_new_session=True, cwd=str(data))


def wait_until_up(url: str, process: subprocess.Popen[bytes], timeout: float = 180) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ReengError(f"Label Studio exited with status {process.returncode} before answering at {url}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise ReengError(f"Label Studio did not answer at {url} within {timeout:.0f} s")


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop the server started by :func:`start` (its own process group, nothing else)."""
    import signal

    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def serve(env: Path, data: Path, port: int, host: str = "127.0.0.1") -> None:
    """Run Label Studio in the foreground until interrupted, printing its URL once it answers."""
    import signal

    process = start(env, data, port, host=host, log=sys.stderr)
    url = f"http://{host}:{port}"
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so `finally` stops the server on a plain kill too
    try:
        wait_until_up(url, process)
        print(f"Label Studio is up at {url} (data in {data}); Ctrl-C stops it", flush=True)
        process.wait()
    finally:
        stop(process)


def add_user(url: str, email: str, password: str) -> str:
    """Sign a rater up on a local Label Studio (its own sign-up form) and return the rater's API token."""
    import re

    import httpx

    with httpx.Client(base_url=url, timeout=60) as client:
        page = client.get("/user/signup/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        if token is None:
            raise ReengError(f"{url}/user/signup/ shows no sign-up form")
        done = client.post("/user/signup/", data={"csrfmiddlewaretoken": token.group(1), "email": email, "password": password},
                           headers={"Referer": f"{url}/user/signup/"})
        if done.status_code != 302:
            raise ReengError(f"signing up {email} on {url} failed (HTTP {done.status_code})")
        answer = client.get("/api/current-user/token")
        if answer.status_code != 200:
            raise ReengError(f"{url} gave no API token for {email} (HTTP {answer.status_code})")
        return str(answer.json()["token"])


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def local_server(env: Path, data: Path, admin: dict[str, str], template: Path | None = None,
                 log: IO[str] | None = None) -> Iterator[str]:
    """A Label Studio on 127.0.0.1 with a fresh ``data`` folder and an admin (``LABEL_STUDIO_*`` values); yields its URL.

    Migrating a new database takes minutes, so with ``template`` the first run keeps a pristine
    migrated copy there and later runs start from a copy of it.
    """
    import shutil

    if template is not None and not (template / "label_studio.sqlite3").exists():
        scratch = template.with_name(template.name + ".partial")
        shutil.rmtree(scratch, ignore_errors=True)
        with local_server(env, scratch, admin, None, log):
            pass
        shutil.rmtree(template, ignore_errors=True)
        os.replace(scratch, template)
    if template is not None:
        shutil.copytree(template, data, dirs_exist_ok=True)
    port = free_port()
    process = start(env, data, port, extra_env=admin, log=log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url, process, timeout=900)
        yield url
    finally:
        stop(process)
