"""Where the shipped data lives: the checkout's top-level folders, or the installed wheel's copy."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
_CHECKOUT = _PACKAGE.parent.parent  # src/gameday -> repo root


def shipped(folder: str) -> Path:
    """``features`` or ``scenarios``: the repo's own folder when running from a checkout,
    else the copy packaged as gameday/shipped/<folder>."""
    in_checkout = _CHECKOUT / folder
    if (_CHECKOUT / "pyproject.toml").exists() and in_checkout.is_dir():
        return in_checkout
    return _PACKAGE / "shipped" / folder
