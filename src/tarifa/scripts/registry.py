"""The functions a script may call: `expose(name, func, permission=None, read_only=False)`.

`func(*args, actor=..., **kwargs)` runs in Tarifa's process, in the transaction of the code that ran
the script (a savepoint per call: a refused call leaves nothing behind), as the run's actor. It takes
and returns JSON data (records as numbers/codes, amounts as decimal strings); a `DomainError` it
raises reaches the script as an error with its code and message. `permission` is the one the actor
needs (a user's permission; the actor "system" — scheduled scripts — has them all); `read_only`
functions never write, and are the only ones offered to a run with `allow_writes=False`.

Apps above scripts (tickets) expose their own functions in their AppConfig.ready().
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789_")
LUA_KEYWORDS = {"and", "break", "do", "else", "elseif", "end", "false", "for", "function", "goto", "if", "in",
                "local", "nil", "not", "or", "repeat", "return", "then", "true", "until", "while"}
# Names the sandbox itself defines: no exposed function may hide them.
RESERVED = {"log", "print", "context", "pcall", "xpcall", "string", "table", "math", "utf8", "os", "error",
            "assert", "ipairs", "pairs", "next", "select", "tonumber", "tostring", "type", "unpack",
            "setmetatable", "getmetatable", "rawequal", "rawget", "rawset", "rawlen", "_G"}


@dataclass(frozen=True)
class Exposed:
    name: str
    func: Callable
    permission: str | None = None
    read_only: bool = False

    @property
    def doc(self) -> str:
        return (self.func.__doc__ or "").strip()

    @property
    def summary(self) -> str:
        return self.doc.split("\n\n")[0].replace("\n", " ")


_functions: dict[str, Exposed] = {}


def expose(name: str, func: Callable, permission: str | None = None, read_only: bool = False) -> Exposed:
    """Offer `func` to scripts as the global function `name` (a Lua identifier: lower case, digits, _)."""
    if not name or not set(name) <= NAME_CHARS or name[0].isdigit() or name in LUA_KEYWORDS or name in RESERVED:
        raise ValueError(f"{name!r} cannot be the name of a script function")
    existing = _functions.get(name)
    if existing is not None and existing.func is not func:
        raise ValueError(f"the script function {name!r} is already exposed by {existing.func.__module__}")
    exposed = Exposed(name=name, func=func, permission=permission, read_only=read_only)
    _functions[name] = exposed
    return exposed


def get(name: str) -> Exposed | None:
    return _functions.get(name)


def all_functions() -> list[Exposed]:
    return sorted(_functions.values(), key=lambda f: f.name)


def is_user(actor) -> bool:
    return actor is not None and not isinstance(actor, str) and getattr(actor, "pk", None) is not None


def permitted(exposed: Exposed, actor) -> bool:
    """May `actor` call it? A function without a permission: anyone. The actor "system": all."""
    if exposed.permission is None or isinstance(actor, str):
        return True
    return bool(is_user(actor) and actor.is_active and actor.has_perm(exposed.permission))
