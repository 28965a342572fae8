"""`kiln api` and `kiln up` on a port another server holds: one line saying so and what to do,
exit code 1, before anything starts (uvicorn alone says only "[Errno 98] address already in use")."""

from __future__ import annotations

import socket
import subprocess
import sys


def test_a_busy_port_is_named_with_the_setting_that_moves_it(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        for command in (["api"], ["up"]):
            done = subprocess.run([sys.executable, "-m", "app.cli", *command, "--port", str(port)], capture_output=True, text=True, timeout=120,
                                  env={"PATH": "/usr/bin:/bin", "KILN_DATA_DIR": str(tmp_path)})
            assert done.returncode == 1, done.stderr
            assert done.stderr.strip().splitlines()[-1] == (f"kiln: port {port} on 127.0.0.1 is in use: set KILN_PORT (or --port) to another, "
                                                            "or stop the server that holds it")
