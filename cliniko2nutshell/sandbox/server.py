"""Serve an ASGI app with uvicorn on 127.0.0.1 in a background thread (tests, the demo and `sandbox`)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import uvicorn


def bind_loopback(port: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # asyncio only sets TCP_NODELAY on sockets it creates; without it every answer waits ~40 ms (Nagle).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(512)
    sock.set_inheritable(True)
    return sock


class ServerThread:
    """Run `app` on one or more loopback sockets until `stop()`. `urls[i]` is `http://127.0.0.1:<port i>`."""

    def __init__(self, app: object, ports: tuple[int, ...] = (0,)) -> None:
        self.sockets = [bind_loopback(p) for p in ports]
        self.urls = [f"http://127.0.0.1:{s.getsockname()[1]}" for s in self.sockets]
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", timeout_keep_alive=30)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name="sandbox-server", daemon=True)

    @property
    def url(self) -> str:
        return self.urls[0]

    def _run(self) -> None:
        asyncio.run(self._server.serve(sockets=self.sockets))

    def start(self) -> ServerThread:
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the sandbox server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        for s in self.sockets:
            s.close()

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
