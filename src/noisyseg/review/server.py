"""Serve the review app of an audit folder on a local port (``noisyseg review AUD``)."""

from __future__ import annotations

import errno
import getpass
import logging
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from noisyseg.errors import ConfigError
from noisyseg.review.app import LOCAL_HOSTS, make_app
from noisyseg.review.audit import AuditView, open_audit
from noisyseg.review.export import DECISION_LOG
from noisyseg.review.render import render
from noisyseg.review.store import DecisionStore

__all__ = ["ReviewServer", "allowed_hosts_for", "bind", "serve"]

log = logging.getLogger("noisyseg")

_EVERY_INTERFACE = ("0.0.0.0", "::", "")


def allowed_hosts_for(host: str) -> tuple[str, ...]:
    """The ``Host`` names a server bound to ``host`` answers to: the local names
    (:data:`~noisyseg.review.app.LOCAL_HOSTS`) and ``host`` itself; bound to every interface
    (``0.0.0.0``, ``::``), this machine's host names and their addresses instead of ``host``.

    Examples
    --------
    >>> allowed_hosts_for("review.lab")
    ('127.0.0.1', 'localhost', '::1', 'review.lab')
    """
    if host not in _EVERY_INTERFACE:
        return tuple(dict.fromkeys([*LOCAL_HOSTS, host.strip("[]")]))
    names = [socket.gethostname(), socket.getfqdn()]
    addrs = []
    for name in names:
        try:
            addrs += [str(a[4][0]) for a in socket.getaddrinfo(name, None)]
        except OSError:
            pass
    return tuple(dict.fromkeys([*LOCAL_HOSTS, *(n for n in names + addrs if n)]))


def bind(host: str, port: int, *, tries: int = 20) -> socket.socket:
    """A listening socket on ``host``: ``port``, or the next free one of ``tries`` ports
    (``port=0``: any free port)."""
    if not 0 <= port <= 65535:
        raise ConfigError(f"port: expected 0..65535, got {port}")
    last: OSError | None = None
    for p in [port] if port == 0 else range(port, port + tries):
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind((host, p))
            sock.listen(128)
            return sock
        except OSError as exc:
            sock.close()
            last = exc
            if exc.errno != errno.EADDRINUSE:
                break
    raise ConfigError(f"port: cannot listen on {host}:{port} ({last})")


def _warm_up(view: AuditView) -> None:
    """Read and render the top case once, so the first page opens at full speed (the readers,
    the PNG encoder and the case cache are ready before the URL is printed)."""
    c = view.case(int(view.cases["index"].iloc[0]))
    for layer in ("image", "given"):
        render(layer, image=c.image, given=c.given, pseudo=c.pseudo, plane=0,
               index=c.given.shape[0] // 2 if c.given.ndim == 3 else 0)


@dataclass
class ReviewServer:
    """What :func:`serve` started, as its ``on_ready`` callback receives it.

    Parameters
    ----------
    url : str
        The app's address, with the token.
    token : str
        The session token.
    host : str
        The host name or address listened on.
    port : int
        The port listened on.

    Examples
    --------
    >>> ReviewServer("http://127.0.0.1:8765/?token=t", "t", "127.0.0.1", 8765).port
    8765
    """

    url: str
    token: str
    host: str
    port: int


def serve(folder: str | Path, *, reviewer: str | None = None, host: str = "127.0.0.1",
          port: int = 8765, data: str | None = None, token: str | None = None,
          on_ready: Callable[[ReviewServer], None] | None = None) -> None:
    """Open audit ``folder`` and serve its review app until interrupted.

    Decisions go to ``folder/review.sqlite`` (see :mod:`noisyseg.review.store`), signed with
    ``reviewer`` (default: the login name). ``on_ready`` gets the URL once the port listens,
    before the first request is served. Requests must name this server in their ``Host``
    header (see :func:`allowed_hosts_for`). No example: the function blocks until it is
    interrupted.

    Parameters
    ----------
    folder : str or Path
        The audit folder.
    reviewer : str, optional
        Who the decisions are signed by (default: the login name).
    host : str, default '127.0.0.1'
        The address to listen on.
    port : int, default 8765
        The port to listen on, 0..65535.
    data : str, optional
        The audited dataset's source when it has moved since the audit.
    token : str, optional
        The session token (default: a fresh random one).
    on_ready : callable, optional
        ``on_ready(server)`` with the :class:`ReviewServer` once the port listens.

    Returns
    -------
    None
        Once the server is interrupted.

    Raises
    ------
    DataError
        Not an audit folder, or its dataset is unreadable.
    ConfigError
        A port outside 0..65535, or one that cannot be bound.
    """
    import uvicorn

    view = open_audit(folder, data=data)
    store = DecisionStore(Path(folder) / DECISION_LOG, cases=set(view.cases["sample_id"]))
    reviewer = (reviewer or getpass.getuser() or "reviewer").strip()
    token = token or secrets.token_urlsafe(24)
    app = make_app(view, store, reviewer=reviewer, token=token, allowed_hosts=allowed_hosts_for(host))
    _warm_up(view)
    sock = bind(host, port)
    real_port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    if host in ("0.0.0.0", "::"):
        log.warning("review: listening on every network interface (%s); anyone who has the "
                    "URL's token can read these images", host)
        shown = "127.0.0.1"
    info = ReviewServer(url=f"http://{shown}:{real_port}/?t={token}", token=token, host=host,
                        port=real_port)
    if on_ready is not None:
        on_ready(info)
    # no proxy in front: the peer address is the socket's, never an X-Forwarded-For header
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                            proxy_headers=False)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        store.close()
        sock.close()
