"""Where this installation keeps its state (embedded database, uploads)."""

import os
from pathlib import Path


def project_home() -> Path:
    """The directory holding `var/`: `TARIFA_HOME`, else the checkout Tarifa runs from.

    Every `tarifa` command run from a checkout must find the same embedded database as
    `make run`, wherever the shell's working directory is, so the checkout is located
    from this file (an editable install), not from the current directory.
    """
    if os.environ.get("TARIFA_HOME"):
        return Path(os.environ["TARIFA_HOME"]).resolve()
    checkout = Path(__file__).resolve().parents[3]
    if (checkout / "pyproject.toml").exists() and (checkout / "src" / "tarifa").is_dir():
        return checkout
    return Path.cwd()


def var_dir() -> Path:
    path = project_home() / "var"
    path.mkdir(parents=True, exist_ok=True)
    return path
