"""`voice-agent` commands forked from a process that has already imported them.

The tests run `voice-agent chat` (and `check`, `setup`) well over a hundred times. A fresh
interpreter spends 2-4 s of its ~4 s importing livekit-agents, openai and pydantic before
the command does anything; CI paid that on every run. This process imports once, then
forks one child per command it is sent: the child takes the command's environment,
working directory, stdin and output files, and runs the console script's own `main`, so
the command's code is the user's from argument parsing to exit status. What it does not
show is what happens at import, so the tests of first contact (help, `start`, the
library warnings a fresh start prints) run the real executable (`testing/cli.py`).

Protocol, one line each way per command: the test writes a JSON request; this process
answers with the child's pid, then with its exit status (negative: killed by a signal).
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import traceback
from typing import Any, NoReturn

# what every forked command would otherwise import itself
import agent.commands.chat
import agent.commands.check
import agent.commands.cli
import agent.commands.setup


def _run_command(request: dict[str, Any]) -> NoReturn:
    code: object = 1
    try:
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        files = (
            (request["stdin"], os.O_RDONLY),
            (request["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
            (request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
        )
        for fd, (path, flags) in enumerate(files):
            opened = os.open(path, flags, 0o600)
            os.dup2(opened, fd)
            os.close(opened)
        # the streams a fresh interpreter would open on those descriptors
        sys.stdin = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115
        sys.stdout = open(1, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
        sys.stderr = open(  # noqa: SIM115
            2, "w", encoding="utf-8", errors="backslashreplace", closefd=False, buffering=1
        )
        sys.argv = ["voice-agent", *request["args"]]
        code = agent.commands.cli.main(request["args"])
    except SystemExit as e:
        code = e.code
    except BaseException:  # what a fresh interpreter would print before exiting 1
        traceback.print_exc()
        code = 1
    if code is not None and not isinstance(code, int):
        print(code, file=sys.stderr)  # `sys.exit("message")`
        code = 1
    try:
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code or 0)


def main() -> None:
    replies = sys.stdout
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _run_command(request)
        print(pid, file=replies, flush=True)
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status), file=replies, flush=True)


if __name__ == "__main__":
    main()
