"""The Flask application: one atlas loaded at start, every endpoint module mounted on it."""

from __future__ import annotations

import importlib
import logging
import os
import re

from flask import Flask, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from layers import lookup, overlay as overlays, store
from server.http import Problem, problem_response

# Each module is one feature's HTTP face: a ``blueprint`` and, for the CLI, ``add_commands``.
FEATURE_MODULES = ("server.features", "server.maps", "server.tiles", "server.exports", "server.styles", "server.lookup",
                   "server.publish")
ALLOWED_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_URL_LENGTH = 4096

# Settings and the environment variables that set them (documented in the README).
SETTINGS = {
    "BASE_URL": ("TTP_ATLAS_BASE_URL", ""),
    "ALLOWED_HOSTS": ("TTP_ATLAS_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]"),
    "CORS_ORIGINS": ("TTP_ATLAS_CORS_ORIGINS", "*"),
    "CACHE_MAX_AGE": ("TTP_ATLAS_CACHE_MAX_AGE", "3600"),
    "BASEMAP_URL": ("TTP_ATLAS_BASEMAP_URL", ""),
    "EVENTS": (overlays.EVENTS_ENV, ""),  # the user's event file, loaded once at start
}
CSP = ("default-src 'self'; img-src 'self' data: blob:{extra_images}; style-src 'self' 'unsafe-inline'; "
       "script-src 'self' 'unsafe-inline'; font-src 'self' data:; connect-src 'self'; frame-ancestors *")


def content_security_policy(basemap_url: str) -> str:
    """Only the service's own origin, plus the configured online basemap's host for its tile images."""
    match = re.match(r"^(https?://[^/]+)", basemap_url or "")
    extra = " " + re.sub(r"\{[a-z]\}", "*", match.group(1)) if match else ""
    return CSP.format(extra_images=extra)

log = logging.getLogger("ttp_atlas")


def settings_from_env(environ=None) -> dict:
    env = os.environ if environ is None else environ
    values = {key: env.get(var, default) for key, (var, default) in SETTINGS.items()}
    values["CACHE_MAX_AGE"] = int(values["CACHE_MAX_AGE"])
    return values


def feature_modules():
    return [importlib.import_module(name) for name in FEATURE_MODULES]


def overlay() -> overlays.Overlay | None:
    """The events overlay of this app (None when no event file is loaded): for the blueprints."""
    return current_app.extensions["overlay"]


def create_app(atlas: store.Atlas, **overrides) -> Flask:
    """The app, with the event file of ``EVENTS`` (``$TTP_ATLAS_EVENTS``) loaded; events.EventFileError
    when that file cannot be read as one."""
    app = Flask(__name__, static_folder=None)  # /static/... belongs to the vendor assets
    app.config.update(settings_from_env(), MAX_CONTENT_LENGTH=0, **overrides)
    app.json.ensure_ascii = False
    app.extensions["atlas"] = atlas
    app.extensions["lookup"] = lookup.Locator(atlas)  # shared by the lookup endpoints and the overlay
    app.extensions["overlay"] = overlays.load(atlas, app.config["EVENTS"], app.extensions["lookup"]) \
        if app.config["EVENTS"] else None
    for module in feature_modules():
        app.register_blueprint(module.blueprint)

    @app.before_request
    def guard():
        if request.method not in ALLOWED_METHODS:
            raise Problem(405, "Method not allowed", f"{request.method} is not allowed; use GET, HEAD or OPTIONS")
        if "\x00" in request.path:  # no file or name holds one; os.stat would raise on it
            raise Problem(404, "Not found", "a path with a NUL character names nothing")
        if len(request.full_path) > MAX_URL_LENGTH:
            raise Problem(414, "URI too long", f"the request URL is longer than {MAX_URL_LENGTH} characters")
        if request.method == "OPTIONS":
            return Response(status=204, headers={"Allow": "GET, HEAD, OPTIONS"})
        return None

    @app.after_request
    def headers(response: Response) -> Response:
        response.headers["X-Content-Type-Options"] = "nosniff"
        if "accept_mimetypes" in request.__dict__:  # werkzeug parses Accept once, when an endpoint negotiates
            response.vary.update(("Accept", "Accept-Encoding"))
        if response.mimetype == "text/html":
            response.headers["Content-Security-Policy"] = content_security_policy(app.config["BASEMAP_URL"])
        origins = app.config["CORS_ORIGINS"]
        origin = request.headers.get("Origin")
        if origins == "*":
            response.headers["Access-Control-Allow-Origin"] = "*"
        elif origin and origin in origins.split(","):
            response.headers["Access-Control-Allow-Origin"] = origin
            response.vary.add("Origin")
        response.headers["Access-Control-Allow-Methods"] = "GET, HEAD, OPTIONS"
        response.headers["Access-Control-Expose-Headers"] = "ETag, Link"
        return response

    @app.errorhandler(Problem)
    def on_problem(error: Problem):
        return problem_response(error)

    @app.errorhandler(HTTPException)
    def on_http_error(error: HTTPException):
        return problem_response(Problem(error.code or 500, error.name, error.description or error.name))

    @app.errorhandler(Exception)
    def on_crash(error: Exception):
        log.exception("unhandled error on %s", request.path)
        return problem_response(Problem(500, "Internal server error", "the server could not answer this request"))

    @app.get("/healthz")
    def healthz():
        return jsonify(status="ok")

    @app.get("/readyz")
    def readyz():
        return jsonify(status="ready", build_id=atlas.build_id, layers={
            lid: entry["features"] for lid, entry in atlas.manifest["layers"].items()})

    return app
