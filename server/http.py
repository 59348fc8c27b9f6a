"""HTTP plumbing shared by every endpoint: problem documents, parameters, caching, compression.

Endpoints stay thin: they validate with ``params``, raise ``Problem`` on bad input, and answer with
``respond`` (which adds ETag/304, Cache-Control and gzip in one place). Process caches hold bytes
within a byte budget (``ByteCache``), so no traffic pattern grows a worker without bound.
"""

from __future__ import annotations

import ctypes
import gc
import gzip
import hashlib
import json
import re
from collections.abc import Iterable

from flask import Response, current_app, request
from werkzeug.http import quote_etag, unquote_etag
from werkzeug.sansio.utils import host_is_trusted

from geo import paper
from geo.cache import ByteCache, budget_from_env

PROBLEM_JSON = "application/problem+json"
GEOJSON = "application/geo+json"
JSON = "application/json"


class Problem(Exception):
    """An RFC 9457 problem: raised anywhere in a request, rendered by the app's error handler."""

    def __init__(self, status: int, title: str, detail: str, headers: dict | None = None, **extra):
        super().__init__(detail)
        self.status, self.title, self.detail, self.extra = status, title, detail, extra
        self.headers = headers or {}

    def document(self) -> dict:
        return {"type": "about:blank", "title": self.title, "status": self.status, "detail": self.detail,
                "instance": request.path, **self.extra}


def problem_response(error: Problem) -> Response:
    response = Response(json.dumps(error.document(), ensure_ascii=False), status=error.status,
                        mimetype=PROBLEM_JSON, headers=error.headers)
    if error.status == 405:
        response.headers["Allow"] = "GET, HEAD, OPTIONS"
    return response


def bad_parameter(name: str, value, valid: str) -> Problem:
    return Problem(400, "Invalid parameter", f"parameter {name}={value!r} is invalid: {valid}",
                   parameter=name, valid=valid)


def not_found(what: str, valid: Iterable[str] | None = None) -> Problem:
    extra = {"valid": sorted(valid)} if valid is not None else {}
    return Problem(404, "Not found", f"{what} does not exist", **extra)


# --- query parameters ------------------------------------------------------------------------

def params(allowed: Iterable[str]) -> dict[str, str]:
    """The query parameters, refusing unknown or repeated ones with a 400 naming them."""
    allowed = set(allowed)
    unknown = sorted(set(request.args) - allowed)
    if unknown:
        raise bad_parameter(unknown[0], request.args.get(unknown[0]),
                            f"unknown parameter; valid parameters: {', '.join(sorted(allowed)) or 'none'}")
    repeated = [k for k in request.args if len(request.args.getlist(k)) > 1]
    if repeated:
        raise bad_parameter(repeated[0], request.args.getlist(repeated[0]), "give the parameter once")
    return dict(request.args)


# One spelling per integer: ASCII digits, no sign, no leading zero (int() would also take "1_0", " 5",
# "+5", "٥" and "05", each a separate cache entry for the same answer).
CANONICAL_INT = re.compile(r"0|-?[1-9][0-9]{0,17}", re.ASCII)


def int_param(args: dict, name: str, default: int, minimum: int, maximum: int) -> int:
    raw = args.get(name)
    if raw is None:
        return default
    valid = f"an integer from {minimum} to {maximum} in ASCII digits, without leading zeros"
    if not CANONICAL_INT.fullmatch(raw) or not minimum <= int(raw) <= maximum:
        raise bad_parameter(name, raw, valid)
    return int(raw)


def bbox_param(args: dict, name: str = "bbox") -> tuple[float, float, float, float] | None:
    """A CRS84 bbox ``minx,miny,maxx,maxy`` (4 finite numbers, min <= max, within lon/lat range)."""
    raw = args.get(name)
    if raw is None:
        return None
    try:
        return paper.parse_bbox(raw, allow_point=True)
    except paper.InvalidValue as error:
        raise bad_parameter(name, raw, error.valid) from None


# --- responses -------------------------------------------------------------------------------

# --- memory --------------------------------------------------------------------------------

def release_free_memory() -> None:
    """Collect cycles now and hand freed heap back to the OS (glibc keeps it otherwise), after work that
    allocated hundreds of MB at once; cheap once the preloaded atlas is frozen out of the collector."""
    gc.collect()
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


_MALLOC_TRIM = getattr(ctypes.CDLL(None), "malloc_trim", None)  # glibc only
RETRY_AFTER_SECONDS = 5
GZIP_CACHE_ENV = "TTP_ATLAS_GZIP_CACHE_MB"
_GZIPPED = ByteCache(budget_from_env(GZIP_CACHE_ENV, 64))  # gzip bodies by their identity ETag


def etag_of(body: bytes) -> str:
    return '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'


def encoding_etag(etag: str, encoding: str | None) -> str:
    """Each encoding of a representation is its own representation with its own strong ETag."""
    if not encoding:
        return etag
    tag, weak = unquote_etag(etag)
    return quote_etag(f"{tag}-{encoding}", weak)


def not_modified(etag: str) -> bool:
    """If-None-Match uses the weak comparison (RFC 9110 13.1.2): ``W/"x"`` matches ``"x"``; ``*`` matches."""
    return request.if_none_match.contains_weak(unquote_etag(etag)[0])


def accepts_gzip() -> bool:
    """Accept-Encoding by its q-values: ``gzip;q=0`` refuses gzip, ``*`` offers it."""
    return request.accept_encodings["gzip"] > 0


def respond(body: bytes, mimetype: str, etag: str | None = None, max_age: int | None = None,
            status: int = 200, headers: dict | None = None) -> Response:
    """A cacheable response: an ETag per encoding (304 on a weak If-None-Match match), Cache-Control,
    gzip when accepted, and ``Vary: Accept-Encoding`` (the app adds ``Accept`` when negotiated on it)."""
    etag = etag or etag_of(body)
    max_age = current_app.config["CACHE_MAX_AGE"] if max_age is None else max_age
    gzipped = len(body) > 1024 and _compressible(mimetype) and accepts_gzip()
    encoding = "gzip" if gzipped else None
    common = {"ETag": encoding_etag(etag, encoding), "Cache-Control": f"public, max-age={max_age}",
              **(headers or {})}
    if not_modified(common["ETag"]):
        response = Response(status=304, headers=common)
    else:
        if gzipped:
            body = _GZIPPED.get_or_make(etag, lambda: gzip.compress(body, compresslevel=6, mtime=0))
            common["Content-Encoding"] = "gzip"
        response = Response(body, status=status, mimetype=mimetype, headers=common)
    response.vary.add("Accept-Encoding")
    return response


def _compressible(mimetype: str) -> bool:
    return mimetype.startswith("text/") or "json" in mimetype or "xml" in mimetype or "protobuf" in mimetype \
        or mimetype in ("application/vnd.mapbox-vector-tile", "application/javascript", "application/x-protobuf")


def json_response(obj, mimetype: str = JSON, **kwargs) -> Response:
    return respond(json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode(), mimetype, **kwargs)


def base_url() -> str:
    """The prefix of every link, without a trailing slash: the configured public URL; else this request's
    own origin when its Host is on the allow-list; else "" (links relative to the host), so a forged
    Host never reaches a link that a shared cache keeps."""
    configured = current_app.config.get("BASE_URL")
    if configured:
        return configured.rstrip("/")
    allowed = [h.strip() for h in current_app.config["ALLOWED_HOSTS"].split(",") if h.strip()]
    return request.host_url.rstrip("/") if host_is_trusted(request.host, allowed) else ""

