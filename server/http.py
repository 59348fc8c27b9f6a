"""HTTP plumbing shared by every endpoint: problem documents, parameters, caching, compression.

Endpoints stay thin: they validate with ``params``, raise ``Problem`` on bad input, and answer with
``respond`` (which adds ETag/304, Cache-Control and gzip in one place).
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Iterable
from functools import lru_cache

from flask import Response, current_app, request

from geo import paper

PROBLEM_JSON = "application/problem+json"
GEOJSON = "application/geo+json"
JSON = "application/json"


class Problem(Exception):
    """An RFC 9457 problem: raised anywhere in a request, rendered by the app's error handler."""

    def __init__(self, status: int, title: str, detail: str, **extra):
        super().__init__(detail)
        self.status, self.title, self.detail, self.extra = status, title, detail, extra

    def document(self) -> dict:
        return {"type": "about:blank", "title": self.title, "status": self.status, "detail": self.detail,
                "instance": request.path, **self.extra}


def problem_response(error: Problem) -> Response:
    response = Response(json.dumps(error.document(), ensure_ascii=False), status=error.status,
                        mimetype=PROBLEM_JSON)
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


def int_param(args: dict, name: str, default: int, minimum: int, maximum: int) -> int:
    raw = args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad_parameter(name, raw, f"an integer from {minimum} to {maximum}") from None
    if not minimum <= value <= maximum:
        raise bad_parameter(name, raw, f"an integer from {minimum} to {maximum}")
    return value


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

@lru_cache(maxsize=4096)
def _gzipped(body: bytes) -> bytes:
    return gzip.compress(body, compresslevel=6, mtime=0)


def etag_of(body: bytes) -> str:
    return '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'


def respond(body: bytes, mimetype: str, etag: str | None = None, max_age: int | None = None,
            status: int = 200, headers: dict | None = None) -> Response:
    """A cacheable response: strong ETag (304 on If-None-Match), Cache-Control, gzip when accepted."""
    etag = etag or etag_of(body)
    max_age = current_app.config["CACHE_MAX_AGE"] if max_age is None else max_age
    common = {"ETag": etag, "Cache-Control": f"public, max-age={max_age}", "Vary": "Accept-Encoding",
              **(headers or {})}
    if etag in [t.strip() for t in request.headers.get("If-None-Match", "").split(",")]:
        return Response(status=304, headers=common)
    if len(body) > 1024 and "gzip" in request.headers.get("Accept-Encoding", "") and _compressible(mimetype):
        body = _gzipped(body)
        common["Content-Encoding"] = "gzip"
    return Response(body, status=status, mimetype=mimetype, headers=common)


def _compressible(mimetype: str) -> bool:
    return mimetype.startswith("text/") or "json" in mimetype or "xml" in mimetype or "protobuf" in mimetype \
        or mimetype in ("application/vnd.mapbox-vector-tile", "application/javascript", "application/x-protobuf")


def json_response(obj, mimetype: str = JSON, **kwargs) -> Response:
    return respond(json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode(), mimetype, **kwargs)


def base_url() -> str:
    """The public base URL (configured for deployments behind a proxy), without a trailing slash."""
    return (current_app.config.get("BASE_URL") or request.host_url).rstrip("/")

