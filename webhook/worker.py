"""netguard's gunicorn worker: gthread with its connection count kept right, so shutdown drains.

On SIGTERM a gthread worker stops accepting, answers what it has (kept-alive connections get
`Connection: close` and at most a 2 s linger) and exits once its count of open connections is
zero. gunicorn 27 counts one connection twice when the TLS handshake meets EOF (a TCP probe, a
port scan, a client that gives up mid-handshake): the handler closes the socket, and closing it
again in finish_request raises and decrements a second time. Measured: six bare connect+close
made the count -5, and SIGTERM then ended the worker at once, cutting the requests in flight and
resetting kept-alive connections. finish_request handles exactly one connection, so it may
lower the count by one at most; this worker holds it to that.
"""

from __future__ import annotations

from typing import Any

from gunicorn.workers.gthread import ThreadWorker as _GthreadWorker


class ThreadWorker(_GthreadWorker):  # type: ignore[misc]  # gunicorn ships no type hints
    nr_conns: int  # open connections: accepted, in a request, or kept alive

    def finish_request(self, *args: Any) -> None:
        before = self.nr_conns
        super().finish_request(*args)
        self.nr_conns = max(self.nr_conns, before - 1)
