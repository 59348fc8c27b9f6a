"""Placeholder: filled in by its feature."""

from flask import Blueprint

blueprint = Blueprint("exports", __name__)


def add_commands(subparsers, common) -> None:
    """No commands yet."""
