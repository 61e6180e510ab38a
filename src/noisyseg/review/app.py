"""The review web app: a Starlette application over an opened audit and its decision log.

Routes (every ``/api`` route needs the session token, as Jupyter's do: ``?t=TOKEN`` on reads,
the ``X-Noisyseg-Token`` header on the one write, which a page of another site cannot set):

- ``GET /?t=TOKEN``: the page (``static/index.html``); ``/static/<name>``: its script and style;
- ``GET /api/cases``: the ranked cases (compact rows), detectors, classes and decisions so far;
- ``GET /api/case/{row}``: one case's scores, shape, spacing, planes, start slices, window;
- ``GET /api/render?row=&layer=&plane=&index=&style=&lo=&hi=``: one PNG layer of one plane,
  rendered on demand and cached by the browser;
- ``GET /api/decisions?since=SEQ``: decisions written after ``SEQ`` (other tabs, other people);
- ``POST /api/decision`` ``{"sample_id", "decision", "note"}``: append one decision; the reply
  comes after the commit.

Only the page's own files and the audit's cases (looked up by row number, never by a path
from the request) are served; a malformed request gets a 4xx and changes nothing.

Every request must name one of ``allowed_hosts`` in its ``Host`` header (else 400: a page of
another site whose name was re-pointed at 127.0.0.1, "DNS rebinding", is refused), and a write
that carries an ``Origin`` must come from ``http(s)://<allowed host>[:port]`` (else 403). A
write's body is a JSON object of at most 16 KiB, nested at most 8 deep, whose strings are valid
UTF-8.
"""

from __future__ import annotations

import ipaddress
import json
import math
import secrets
from collections.abc import Iterable
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pandas as pd
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from noisyseg.errors import NoisysegError
from noisyseg.plot import CLASS_COLOURS, display_window
from noisyseg.review.audit import AuditView
from noisyseg.review.render import LAYERS, auto_window, plane_shape, render
from noisyseg.review.store import DecisionStore

__all__ = ["LOCAL_HOSTS", "TOKEN_HEADER", "make_app"]

TOKEN_HEADER = "X-Noisyseg-Token"
#: The host names a local server answers to when no others are given.
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
_STATIC = {"review.js": "text/javascript", "review.css": "text/css"}
_MAX_BODY = 16_384
_MAX_DEPTH = 8
_PLANES = ("axial", "coronal", "sagittal")


class _BadRequest(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def host_name(value: str | None) -> str | None:
    """The host name of a ``Host`` header or URL netloc (``[::1]:8765`` -> ``::1``), lower
    case without a trailing dot; None when it is not a well-formed ``host[:port]``."""
    if not value or any(c.isspace() or c in "/@?#\\" for c in value):
        return None
    if value.startswith("["):
        host, sep, port = value[1:].partition("]")
        if not sep:
            return None
        try:
            host = str(ipaddress.IPv6Address(host))
        except ValueError:
            return None
        if port and not port.startswith(":"):
            return None
        port = port[1:]
    else:
        host, sep, port = value.partition(":")
        if sep and not port:
            return None
    if port and not (port.isascii() and port.isdigit()):
        return None
    return host.lower().rstrip(".") or None


def _host_set(hosts: Iterable[str]) -> frozenset[str]:
    """``hosts`` (``name``, IPv4, ``::1`` or ``[::1]``) spelled as :func:`host_name` spells them."""
    out = set()
    for h in hosts:
        h = h.strip().lower().rstrip(".")
        if h.startswith("[") and h.endswith("]"):
            h = h[1:-1]
        try:
            h = str(ipaddress.IPv6Address(h))
        except ValueError:
            pass
        if h:
            out.add(h)
    return frozenset(out)


def _origin_ok(origin: str, hosts: frozenset[str]) -> bool:
    """Whether an ``Origin`` header is ``http(s)://<one of hosts>[:port]``."""
    try:
        u = urlsplit(origin)
    except ValueError:
        return False
    if u.scheme not in ("http", "https") or u.path or u.query or u.fragment:
        return False
    return host_name(u.netloc) in hosts


class _HostCheck:
    """ASGI middleware: requests whose ``Host`` is not one of ``hosts`` get 400 (JSON)."""

    def __init__(self, app: ASGIApp, hosts: frozenset[str]) -> None:
        self.app, self.hosts = app, hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            raw = [v for k, v in scope.get("headers", []) if k == b"host"]
            host = host_name(raw[0].decode("latin-1")) if len(raw) == 1 else None
            if host not in self.hosts:
                resp = JSONResponse({"error": "Host header: this server answers only to "
                                     f"{sorted(self.hosts)}"}, status_code=400)
                await resp(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _check_strings(v: Any, depth: int = 0) -> None:
    """Every string of a parsed JSON body (keys too) must be valid UTF-8 (no lone
    surrogates, which JSON's ``\\ud800`` escapes can carry); nesting at most
    :data:`_MAX_DEPTH`."""
    if depth > _MAX_DEPTH:
        raise _BadRequest(f"body: nested more than {_MAX_DEPTH} deep")
    if isinstance(v, str):
        try:
            v.encode("utf-8")
        except UnicodeEncodeError:
            raise _BadRequest("body: a string is not valid UTF-8 (a lone surrogate)") from None
    elif isinstance(v, dict):
        for k, x in v.items():
            _check_strings(k, depth + 1)
            _check_strings(x, depth + 1)
    elif isinstance(v, list):
        for x in v:
            _check_strings(x, depth + 1)


def _same(given: str | None, token: str) -> bool:
    """Constant-time token comparison that takes any text (compare_digest refuses non-ASCII str)."""
    if not given:
        return False
    return secrets.compare_digest(given.encode("utf-8", "replace"), token.encode("utf-8"))


def _json_safe(v: Any) -> Any:
    """``v`` with non-finite floats as None (JSON has no NaN)."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _json_safe(x) for k, x in v.items()}
    return v


def _static(name: str) -> str:
    return resources.files("noisyseg.review").joinpath("static", name).read_text(encoding="utf-8")


def _int(q: Any, key: str, lo: int, hi: int) -> int:
    raw = q.get(key)
    try:
        v = int(raw)
    except (TypeError, ValueError):
        raise _BadRequest(f"{key}: expected an integer, got {raw!r}") from None
    if not lo <= v <= hi:
        raise _BadRequest(f"{key}: {v} is outside {lo}..{hi}", 404)
    return v


def _float(q: Any, key: str) -> float | None:
    raw = q.get(key)
    if raw is None or raw == "":
        return None
    try:
        v = float(raw)
    except ValueError:
        raise _BadRequest(f"{key}: expected a number, got {raw!r}") from None
    if not math.isfinite(v):
        raise _BadRequest(f"{key}: expected a finite number")
    return v


def _clean(v: float) -> float | None:
    return None if not np.isfinite(v) else round(float(v), 6)


def _centre(given: np.ndarray, axis: int | None, worst: int | None) -> list[int]:
    """Where the planes start: through slice ``worst`` along ``axis`` (when known) and the
    centroid of the foreground there (of the whole mask otherwise; the middle when empty)."""
    fg = given > 0
    centre = [n // 2 for n in given.shape]
    if axis is not None and worst is not None:
        centre[axis] = worst
        sl = np.take(fg, worst, axis=axis)
        rest = [a for a in range(given.ndim) if a != axis]
        if sl.any():
            for a, m in zip(rest, _centroid(sl), strict=True):
                centre[a] = m
        return centre
    if fg.any():
        centre = _centroid(fg)
    return centre


def _centroid(fg: np.ndarray) -> list[int]:
    """Foreground centroid from the projections on each axis (no coordinate list)."""
    out = []
    for a in range(fg.ndim):
        w = fg.sum(axis=tuple(b for b in range(fg.ndim) if b != a), dtype=np.int64)
        out.append(int(round(float((w * np.arange(len(w))).sum() / max(w.sum(), 1)))))
    return out


def make_app(view: AuditView, store: DecisionStore, *, reviewer: str, token: str | None = None,
             allowed_hosts: Iterable[str] = LOCAL_HOSTS) -> Starlette:
    """Build the review web app of an opened audit (see the module docstring).

    Parameters
    ----------
    view : AuditView
        The opened audit.
    store : DecisionStore
        Its decision log.
    reviewer : str
        Who the decisions are signed by.
    token : str, optional
        The session token; a fresh random one by default, kept as ``app.state.token``.
    allowed_hosts : iterable of str
        The host names (no port) the ``Host`` header and a write's ``Origin`` may name;
        by default the local ones, :data:`LOCAL_HOSTS`.

    Returns
    -------
    starlette.applications.Starlette
        The ASGI app; ``app.state.token`` holds the session token. Bad requests are
        answered with an error status, not raised.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> import numpy as np
    >>> from noisyseg.data import synthetic_echo
    >>> from noisyseg.review import DecisionStore, open_audit
    >>> from noisyseg.run import rank_run
    >>> ds = synthetic_echo(n=4, size=32, seed=0)
    >>> tmp = tempfile.TemporaryDirectory()
    >>> d = Path(tmp.name)
    >>> (d / "probs").mkdir()
    >>> for sid, m in zip(ds.sample_ids, ds.masks):
    ...     np.save(d / "probs" / f"{sid}.npy", 0.6 * np.eye(4, dtype=np.float32)[m].transpose(2, 0, 1) + 0.1)
    >>> _ = rank_run(data="synthetic-echo:n=4,size=32,seed=0", probs=[d / "probs"], out=d / "audit",
    ...              workers=1, n_suspects=2, pseudo_labels=True)
    >>> store = DecisionStore(d / "audit" / "review.sqlite")
    >>> app = make_app(open_audit(d / "audit"), store, reviewer="ana", token="secret")
    >>> app.state.token
    'secret'
    >>> store.close()
    >>> tmp.cleanup()
    """
    token = token or secrets.token_urlsafe(24)
    hosts = _host_set(allowed_hosts)
    cases = view.cases
    n = len(cases)
    dets = view.detectors
    ndim = view.ndim
    windows: dict[int, tuple[float, float]] = {}
    fixed_window = display_window(getattr(view.ds, "channel_names", ()))

    def authorised(request: Request, *, write: bool = False) -> bool:
        given = request.headers.get(TOKEN_HEADER) if write else (
            request.headers.get(TOKEN_HEADER) or request.query_params.get("t"))
        return _same(given, token)

    def guard(handler: Any, *, write: bool = False) -> Any:
        async def wrapped(request: Request) -> Response:
            if not authorised(request, write=write):
                return JSONResponse({"error": "missing or wrong token: open the URL that "
                                     "`noisyseg review` printed"}, status_code=403)
            try:
                return await handler(request)
            except _BadRequest as exc:
                return JSONResponse({"error": str(exc)}, status_code=exc.status)
            except NoisysegError as exc:
                return JSONResponse({"error": str(exc)}, status_code=422)
        return wrapped

    async def index(request: Request) -> Response:
        t = request.query_params.get("t")
        if not _same(t, token):
            return HTMLResponse("<p>noisyseg review: open the URL that <code>noisyseg review</code> "
                                "printed (it carries the session token).</p>", status_code=403)
        return HTMLResponse(_static("index.html"), headers={"Cache-Control": "no-store"})

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in _STATIC:
            return Response("not found", status_code=404)
        return Response(_static(name), media_type=_STATIC[name])

    def decisions_since(since: int) -> dict[str, Any]:
        rows = [d.to_dict() for d in store.history(since)]
        return {"rows": rows, "seq": rows[-1]["seq"] if rows else since}

    async def list_cases(request: Request) -> Response:
        cols = [cases["sample_id"].tolist(), cases["rank"].tolist()]
        cols += [[_clean(v) for v in cases[f"score_{d}"]] for d in dets]
        cols += [cases[f"flagged_{d}"].astype(bool).tolist() for d in dets]
        truth = cases["corrupted"]
        body = {"n": n, "reviewer": reviewer, "audit": str(view.folder), "data": view.data,
                "kind": view.kind, "detectors": dets, "primary": view.primary, "ndim": ndim,
                "class_names": list(view.class_names), "colours": list(CLASS_COLOURS),
                "truth_known": bool(truth.notna().all()),
                "rows": [list(r) for r in zip(*cols, strict=True)],
                "corrupted": [None if pd.isna(v) else bool(v) for v in truth.tolist()],
                "model_check": _json_safe(view.model_check),
                "log": [d.to_dict() for d in store.history()]}
        body["seq"] = body["log"][-1]["seq"] if body["log"] else 0
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    def window_of(row: int) -> tuple[float, float]:
        if fixed_window is not None:
            return fixed_window
        if row not in windows:
            windows[row] = auto_window(view.case(int(cases["index"].iloc[row])).image)
        return windows[row]

    async def case_meta(request: Request) -> Response:
        try:
            row = int(request.path_params["row"])
        except ValueError:
            raise _BadRequest("row: expected an integer") from None
        if not 0 <= row < n:
            raise _BadRequest(f"row: {row} is outside 0..{n - 1}", 404)
        c = await run_in_threadpool(view.case, int(cases["index"].iloc[row]))
        sid = cases["sample_id"].iloc[row]
        shape = c.given.shape
        planes = []
        worst = view.worst_slice(sid)
        centre = _centre(c.given, view.slice_axis if ndim == 3 else None, worst)
        spacing = c.spacing
        for p in range(1 if ndim == 2 else 3):
            rows_, cols_ = plane_shape(shape, p)
            if ndim == 2:
                sy, sx = spacing[0], spacing[1]
                planes.append({"name": "image", "rows": rows_, "cols": cols_, "n": 1, "start": 0,
                               "row_mm": sy, "col_mm": sx})
                continue
            sz, sy, sx = spacing
            mm = ((sy, sx), (sz, sx), (sz, sy))[p]
            planes.append({"name": _PLANES[p], "rows": rows_, "cols": cols_, "n": int(shape[p]),
                           "start": int(centre[p]), "row_mm": mm[0], "col_mm": mm[1]})
        lo, hi = await run_in_threadpool(window_of, row)
        return JSONResponse({
            "row": row, "sample_id": sid, "rank": int(cases["rank"].iloc[row]),
            "shape": list(shape), "spacing": [float(s) for s in spacing], "planes": planes,
            "window": [lo, hi], "worst_slice": worst, "slice_axis": view.slice_axis,
            "labels_differ": int(np.count_nonzero(c.given != c.pseudo))})

    async def render_layer(request: Request) -> Response:
        q = request.query_params
        row = _int(q, "row", 0, n - 1)
        layer = q.get("layer", "")
        if layer not in LAYERS:
            raise _BadRequest(f"layer: expected one of {list(LAYERS)}, got {layer!r}")
        style = q.get("style", "outline")
        if style not in ("outline", "fill"):
            raise _BadRequest(f"style: expected outline or fill, got {style!r}")
        plane = _int(q, "plane", 0, 0 if ndim == 2 else 2)
        lo, hi = _float(q, "lo"), _float(q, "hi")
        c = await run_in_threadpool(view.case, int(cases["index"].iloc[row]))
        index = 0 if ndim == 2 else _int(q, "index", 0, c.given.shape[plane] - 1)
        window = (lo, hi) if lo is not None and hi is not None and hi > lo else None
        if layer == "image" and window is None:
            window = await run_in_threadpool(window_of, row)
        png = await run_in_threadpool(render, layer, image=c.image, given=c.given,
                                      pseudo=c.pseudo, plane=plane, index=index, style=style,
                                      window=window)
        return Response(png, media_type="image/png",
                        headers={"Cache-Control": "private, max-age=3600"})

    async def poll(request: Request) -> Response:
        since = _int(request.query_params, "since", 0, 2**62)
        return JSONResponse(decisions_since(since), headers={"Cache-Control": "no-store"})

    async def read_body(request: Request) -> bytes:
        """The body, read no further than :data:`_MAX_BODY` bytes (413 beyond)."""
        length = request.headers.get("content-length")
        if length is not None:
            if not (length.isascii() and length.isdigit()) or len(length) > 18:
                raise _BadRequest(f"Content-Length: expected a byte count, got {length[:40]!r}")
            if int(length) > _MAX_BODY:
                raise _BadRequest(f"request too large (at most {_MAX_BODY} bytes)", 413)
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > _MAX_BODY:
                raise _BadRequest(f"request too large (at most {_MAX_BODY} bytes)", 413)
        return bytes(body)

    async def post_decision(request: Request) -> Response:
        origin = request.headers.get("origin")
        if origin is not None and not _origin_ok(origin, hosts):
            return JSONResponse({"error": f"Origin {origin[:80]!r}: writes come from this "
                                 "server's own page only"}, status_code=403)
        if not request.headers.get("content-type", "").startswith("application/json"):
            raise _BadRequest("send JSON (Content-Type: application/json)", 415)
        body = await read_body(request)
        try:
            data = json.loads(body)
        except RecursionError:
            raise _BadRequest(f"body: nested more than {_MAX_DEPTH} deep") from None
        except ValueError:
            raise _BadRequest("body is not valid JSON") from None
        if not isinstance(data, dict):
            raise _BadRequest("body: expected a JSON object")
        _check_strings(data)
        sid, decision, note = data.get("sample_id"), data.get("decision"), data.get("note", "")
        if not isinstance(sid, str) or not isinstance(decision, str) or not isinstance(note, str):
            raise _BadRequest("sample_id and decision (strings) are required; note is a string")
        try:
            d = await run_in_threadpool(store.add, sid, decision, reviewer=reviewer, note=note)
        except NoisysegError as exc:
            raise _BadRequest(str(exc)) from None
        return JSONResponse({"decision": d.to_dict()})

    routes = [
        Route("/", index),
        Route("/static/{name}", static),
        Route("/api/cases", guard(list_cases)),
        Route("/api/case/{row}", guard(case_meta)),
        Route("/api/render", guard(render_layer)),
        Route("/api/decisions", guard(poll)),
        Route("/api/decision", guard(post_decision, write=True), methods=["POST"]),
    ]
    app = Starlette(routes=routes, middleware=[Middleware(_HostCheck, hosts=hosts)])
    app.state.token = token
    app.state.allowed_hosts = hosts
    return app
