"""The rendezvous service with Node's TLS client used the way the Heroku CLI's ``heroku run`` uses
it (``lib/run/dyno.ts``): ``tls.connect(port, host)`` with the default certificate checks, the
URL's path and query without the ``/`` plus CRLF as the first line, the first chunk received
dropped, then stdin (not a terminal) written through and ended with Ctrl-D, and everything else
printed. The certificate is trusted with ``NODE_EXTRA_CA_CERTS``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from dockyard.agent.terminal import hand_over
from dockyard.domain.dataplane import attach_secret
from dockyard.rendezvous.server import RendezvousServer
from dockyard.rendezvous.tls import ensure_certificate, fingerprint, server_context

KEY = "node-test-key"
DYNO_ID = "9b8a7f6e-0000-4000-8000-000000005555"
CLIENT = r"""
const tls = require('tls')
const {Transform} = require('stream')
const uri = new URL(process.argv[2])
const c = tls.connect(Number.parseInt(uri.port, 10), uri.hostname, {rejectUnauthorized: undefined})
c.setEncoding('utf8')
let first = true
c.on('connect', () => c.write(uri.pathname.slice(1) + uri.search + '\r\n'))
c.on('data', data => {
  if (first) {
    first = false
    process.stdin.pipe(new Transform({
      objectMode: true,
      transform: (chunk, _, next) => c.write(chunk, next),
      flush: done => c.write('\x04', done),
    }))
    return
  }
  process.stdout.write(data)
})
c.on('error', error => { process.stderr.write(String(error)); process.exit(2) })
c.on('close', () => process.exit(0))
"""

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")


def test_the_heroku_clis_way_of_connecting_works(tmp_path: Path) -> None:
    cert, key = tmp_path / "rendezvous.crt", tmp_path / "rendezvous.key"
    ensure_certificate(cert, key, "localhost")
    socket_path = tmp_path / "rendezvous.sock"
    url = (
        f"rendezvous://localhost:{{port}}/{attach_secret(KEY, DYNO_ID)}"
        f"?sha256={fingerprint(cert.read_text())}"
    )
    (tmp_path / "client.js").write_text(CLIENT)

    async def scenario() -> tuple[subprocess.CompletedProcess[bytes], ...]:
        server = RendezvousServer(
            KEY,
            server_context(cert, key),
            host="127.0.0.1",
            port=0,
            socket_path=socket_path,
            attach_timeout=10,
        )
        await server.start()
        try:
            results = []
            for trust in (True, False):
                master, slave = os.openpty()
                await asyncio.to_thread(hand_over, socket_path, DYNO_ID, master)
                os.close(master)
                dyno = subprocess.Popen(
                    ["bash", "-c", 'read -r who; echo "hello $who"'],
                    stdin=slave,
                    stdout=slave,
                    stderr=slave,
                    start_new_session=True,
                )
                os.close(slave)
                env = {"PATH": os.environ["PATH"]}
                if trust:
                    env["NODE_EXTRA_CA_CERTS"] = str(cert)
                node = await asyncio.create_subprocess_exec(
                    "node",
                    str(tmp_path / "client.js"),
                    url.format(port=server.port),
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                    env=env,
                )
                stdout, stderr = await asyncio.wait_for(node.communicate(b"heroku\n"), 30)
                dyno.kill()
                dyno.wait()
                results.append(
                    subprocess.CompletedProcess([], node.returncode or 0, stdout, stderr)
                )
            return tuple(results)
        finally:
            await server.close()

    trusted, untrusted = asyncio.run(scenario())
    assert trusted.returncode == 0, trusted.stderr
    assert b"hello heroku\r\n" in trusted.stdout
    assert untrusted.returncode == 2
    assert b"self-signed certificate" in untrusted.stderr
