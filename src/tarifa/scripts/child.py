"""The sandbox process: a Lua interpreter (lupa) and a message channel to its parent, nothing else.

Started by `tarifa.scripts.sandbox` as `python -I child.py MEMORY_BYTES` with an empty environment,
`/` as its directory and no file descriptors but stdin (messages in), stdout (messages out) and
stderr. It imports no Django and no Tarifa module: a script has no ORM, no file and no network, only
the functions its parent offers, each call a message answered by the parent.

Fences, outer to inner:
- the parent kills this process when it does not answer within the run's wall-clock limit;
- RLIMIT_CPU (raised before each run to the CPU used so far + the budget + 1 s): SIGXCPU kills it;
- RLIMIT_AS: the address space, so no allocation outside Lua's allocator runs away either;
- Lua's own allocator limit (lupa's `max_memory`) for the run: "not enough memory";
- an instruction-count hook checking the process's CPU time against the run's budget.
Every run gets a new Lua state: nothing a script leaves behind is seen by the next one.

Messages are length-prefixed JSON (4-byte big-endian length). Parent → child:
`{"op": "run", "source", "context", "functions", "cpu_ms", "memory"}` and the answers to calls
(`{"ok": true, "value"}` / `{"ok": false, "error": {"code", "message"}}`). Child → parent:
`{"op": "ready"}` once, `{"op": "log", "line"}`, `{"op": "call", "name", "args", "kwargs"}`, and
`{"op": "done", "ok", "value", "error", "kind", "cpu_ms"}` (kind: error | budget | memory).
"""

import json
import math
import os
import resource
import struct
import sys
import time

MAX_MESSAGE = 1 << 20
MAX_LOG_LINES = 500
MAX_LINE = 1000
MAX_DEPTH = 32

# The Lua side of the sandbox: a fresh environment of safe library functions for the script, a
# CPU-budget hook, pcall/xpcall that cannot swallow the budget or the memory error, and one Lua
# function per offered Tarifa function. Runs with the real globals; the script sees only `env`.
BOOTSTRAP = r"""
local source, deadline, call, logline, context, names, to_text = ...
local clock, error, pcall, xpcall, select, type = os.clock, error, pcall, xpcall, select, type
local BUDGET = "CPU-time budget exceeded"
local over = false
debug.sethook(function()
  if over or clock() > deadline then over = true; error(BUDGET, 0) end
end, "", 1000)
local function fatal(err)
  return over or err == "not enough memory"
end
local function guard(ok, ...)
  if not ok and fatal((...)) then error((...), 0) end
  return ok, ...
end
string.dump = nil
local env = {
  assert = assert, error = error, ipairs = ipairs, next = next, pairs = pairs, select = select,
  tonumber = tonumber, tostring = tostring, type = type, rawequal = rawequal, rawget = rawget,
  rawlen = rawlen, rawset = rawset, setmetatable = setmetatable, getmetatable = getmetatable,
  unpack = table.unpack,
  string = {byte = string.byte, char = string.char, find = string.find, format = string.format,
            gmatch = string.gmatch, gsub = string.gsub, len = string.len, lower = string.lower,
            match = string.match, rep = string.rep, reverse = string.reverse, sub = string.sub,
            upper = string.upper},
  table = {concat = table.concat, insert = table.insert, remove = table.remove, sort = table.sort,
           unpack = table.unpack, pack = table.pack, move = table.move},
  math = {abs = math.abs, ceil = math.ceil, floor = math.floor, max = math.max, min = math.min,
          fmod = math.fmod, huge = math.huge, maxinteger = math.maxinteger, mininteger = math.mininteger,
          pi = math.pi, sqrt = math.sqrt, tointeger = math.tointeger, type = math.type, ult = math.ult,
          exp = math.exp, log = math.log, random = math.random},
  utf8 = {char = utf8.char, charpattern = utf8.charpattern, codepoint = utf8.codepoint, len = utf8.len,
          offset = utf8.offset, codes = utf8.codes},
  os = {time = os.time, date = os.date, clock = os.clock},
}
env.pcall = function(f, ...) return guard(pcall(f, ...)) end
env.xpcall = function(f, handler, ...)
  return guard(xpcall(f, function(err) if fatal(err) then return err end return handler(err) end, ...))
end
env.log = function(...)
  local parts = {}
  for i = 1, select("#", ...) do parts[#parts + 1] = to_text((select(i, ...))) end
  logline(table.concat(parts, " "))
end
env.print = env.log
for i = 1, #names do
  local name = names[i]
  env[name] = function(...)
    local answer = call(name, ...)
    if not answer[1] then error(answer[2], 2) end
    return answer[2]
  end
end
env.context = context
env._G = env
local chunk, err = load(source, "=script", "t", env)
if not chunk then error(err, 0) end
return chunk(context)
"""

TO_TEXT = r"""
local function to_text(v, depth)
  depth = depth or 0
  if type(v) ~= "table" then return tostring(v) end
  if depth > 3 then return "{…}" end
  local parts, n = {}, 0
  for k, x in pairs(v) do
    n = n + 1
    if n > 50 then parts[#parts + 1] = "…"; break end
    if math.type(k) == "integer" then parts[#parts + 1] = to_text(x, depth + 1)
    else parts[#parts + 1] = tostring(k) .. "=" .. to_text(x, depth + 1) end
  end
  return "{" .. table.concat(parts, ", ") .. "}"
end
return to_text
"""


class ScriptError(Exception):
    pass


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Channel:
    def __init__(self, fd_in: int, fd_out: int):
        self.fd_in, self.fd_out = fd_in, fd_out

    def _read(self, n: int) -> bytes:
        chunks, left = [], n
        while left:
            chunk = os.read(self.fd_in, left)
            if not chunk:
                raise EOFError
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def receive(self) -> dict:
        (length,) = struct.unpack(">I", self._read(4))
        if length > 16 * MAX_MESSAGE:
            raise EOFError
        return json.loads(self._read(length))

    def send(self, message: dict):
        data = json.dumps(message, ensure_ascii=False, allow_nan=False).encode()
        if len(data) > MAX_MESSAGE:
            raise ScriptError("the message to Tarifa is too large (over 1 MB)")
        os.write(self.fd_out, struct.pack(">I", len(data)) + data)


def to_python(value, lua_type, depth=0, seen=None):
    """A Lua value as JSON data: a table with keys 1..n is a list, any other table an object."""
    kind = lua_type(value)
    if kind is None:
        if value is None or isinstance(value, (bool, int, str)):
            return value
        if isinstance(value, float):
            if math.isnan(value) or math.isinf(value):
                raise ScriptError("a number that is not finite cannot be passed to Tarifa")
            return int(value) if value.is_integer() and abs(value) < 2 ** 53 else value
        if isinstance(value, bytes):
            return value.decode("utf-8", "replace")
        raise ScriptError(f"a {type(value).__name__} cannot be passed to Tarifa")
    if kind != "table":
        raise ScriptError(f"a Lua {kind} cannot be passed to Tarifa")
    if depth > MAX_DEPTH:
        raise ScriptError(f"tables nested deeper than {MAX_DEPTH} levels (or containing themselves) cannot be "
                          "passed to Tarifa")
    seen = seen or set()
    if id(value) in seen:
        raise ScriptError("a table that contains itself cannot be passed to Tarifa")
    seen = seen | {id(value)}
    items = list(value.items())
    keys = [k for k, _ in items]
    if keys and all(isinstance(k, int) and not isinstance(k, bool) for k in keys) and sorted(keys) == list(
            range(1, len(keys) + 1)):
        return [to_python(v, lua_type, depth + 1, seen) for _, v in sorted(items, key=lambda kv: kv[0])]
    result = {}
    for k, v in items:
        if isinstance(k, bytes):
            k = k.decode("utf-8", "replace")
        if isinstance(k, float) and k.is_integer():
            k = int(k)
        if not isinstance(k, (str, int)) or isinstance(k, bool):
            raise ScriptError("only text and number keys can be passed to Tarifa")
        result[str(k)] = to_python(v, lua_type, depth + 1, seen)
    return result


def refuse_attributes(obj, name, setting):
    raise AttributeError("not available in scripts")


class Runner:
    def __init__(self, channel: Channel):
        self.channel = channel
        from lupa import lua54

        self.lua54 = lua54

    def check(self, source: str) -> str | None:
        """The syntax error in `source`, or None (compiled, not run)."""
        lua = self.lua54.LuaRuntime(register_eval=False, register_builtins=False,
                                    attribute_filter=refuse_attributes, max_memory=64 * 1024 * 1024)
        try:
            error = lua.eval("function(s) local f, e = load(s, '=script', 't', {}) return e end")(source)
        except self.lua54.LuaError as exc:
            error = str(exc)
        return None if error is None else str(error)[:1000]

    def run(self, message: dict) -> dict:
        lua54 = self.lua54
        cpu_ms, memory = int(message["cpu_ms"]), int(message["memory"])
        start_cpu = cpu_seconds()
        # The outer CPU fence for this run: SIGXCPU once the process has used the budget + 1 s more.
        soft = math.ceil(start_cpu + cpu_ms / 1000 + 1)
        resource.setrlimit(resource.RLIMIT_CPU, (soft, resource.RLIM_INFINITY))
        lua = lua54.LuaRuntime(register_eval=False, register_builtins=False, unpack_returned_tuples=False,
                               attribute_filter=refuse_attributes, max_memory=memory)
        lua_type = lua54.lua_type
        lines = 0

        def logline(text):
            nonlocal lines
            lines += 1
            if lines <= MAX_LOG_LINES:
                line = str(text)
                self.channel.send({"op": "log", "line": line[:MAX_LINE]})
            elif lines == MAX_LOG_LINES + 1:
                self.channel.send({"op": "log", "line": f"… more than {MAX_LOG_LINES} lines: the rest is left out"})

        def to_lua(value):
            if isinstance(value, (dict, list)):
                return lua.table_from(value, recursive=True)
            return value

        def call(name, *args):
            # One table argument with text keys is the keyword form: suspend{subscription=..., reason=...}.
            # Answers {true, value} or {false, message}: the Lua side raises the message as the error.
            try:
                values = [to_python(a, lua_type) for a in args]
            except (ScriptError, RecursionError) as exc:
                return lua.table(False, f"{name}: {exc}")
            kwargs = {}
            if len(values) == 1 and isinstance(values[0], dict):
                kwargs, values = values[0], []
            self.channel.send({"op": "call", "name": name, "args": values, "kwargs": kwargs})
            answer = self.channel.receive()
            if not answer.get("ok"):
                error = answer.get("error") or {}
                return lua.table(False, f"{name}: {error.get('message') or 'refused'} ({error.get('code') or 'error'})")
            return lua.table(True, to_lua(answer.get("value")))

        to_text = lua.execute(TO_TEXT)
        bootstrap = lua.eval("function(...) " + BOOTSTRAP + " end")
        deadline = lua.eval("os.clock()") + cpu_ms / 1000
        context = to_lua(message.get("context") or {})
        names = lua.table_from(list(message.get("functions") or []))
        try:
            value = bootstrap(message["source"], deadline, call, logline, context, names, to_text)
            result = {"ok": True, "value": to_python(value, lua_type)}
        except lua54.LuaMemoryError:
            result = {"ok": False, "kind": "memory", "error": f"memory limit of {memory // (1024 * 1024)} MB reached"}
        except lua54.LuaError as exc:
            text = exc.args[0] if exc.args else str(exc)
            text = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
            if "CPU-time budget exceeded" in text:
                result = {"ok": False, "kind": "budget", "error": f"CPU-time budget of {cpu_ms} ms exceeded"}
            elif "not enough memory" in text:
                result = {"ok": False, "kind": "memory",
                          "error": f"memory limit of {memory // (1024 * 1024)} MB reached"}
            else:
                result = {"ok": False, "kind": "error", "error": text.split("\nstack traceback:")[0][:4000]}
        except ScriptError as exc:
            result = {"ok": False, "kind": "error", "error": str(exc)}
        except RecursionError:
            result = {"ok": False, "kind": "error", "error": "the returned value is nested too deeply"}
        except MemoryError:
            result = {"ok": False, "kind": "memory", "error": "memory limit of the sandbox process reached"}
        result["cpu_ms"] = round((cpu_seconds() - start_cpu) * 1000, 1)
        return result


def main():
    memory = int(sys.argv[1]) if len(sys.argv) > 1 else 512 * 1024 * 1024
    # The channel: the original stdin/stdout. Anything printed by accident goes to stderr instead.
    fd_in, fd_out = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(2, 1)
    os.close(devnull)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    channel = Channel(fd_in, fd_out)
    runner = Runner(channel)  # imports lupa before the file limit below
    resource.setrlimit(resource.RLIMIT_NOFILE, (8, 8))
    channel.send({"op": "ready"})
    while True:
        try:
            message = channel.receive()
        except EOFError:
            return
        if message.get("op") == "check":
            channel.send({"op": "checked", "error": runner.check(message.get("source") or "")})
            continue
        if message.get("op") != "run":
            return
        started = time.monotonic()
        result = runner.run(message)
        result["op"] = "done"
        result["wall_ms"] = round((time.monotonic() - started) * 1000, 1)
        try:
            channel.send(result)
        except (ScriptError, ValueError) as exc:
            channel.send({"op": "done", "ok": False, "kind": "error", "error": f"the result cannot be returned: {exc}",
                          "cpu_ms": result.get("cpu_ms"), "wall_ms": result.get("wall_ms")})


if __name__ == "__main__":
    main()
