"""The sandbox runner: a standalone script that runs one program and its tests in a locked-down child.

`selfimprove.verify.code.SandboxPool` starts this file as `python -s -S -B [-P] _code_runner.py`, in a new
session with a minimal environment: the zygote. It imports nothing from selfimprove. For every run the
parent writes a fresh temporary directory's path, and the zygote forks a supervisor that starts its own
session there (so the interpreter starts once, not once per run).

Two processes per run, so that the verdict is never written by the process that runs model code:

- the supervisor (the zygote's fork) reads the job from stdin, forks the worker, and only then
  reads the parent's nonce (also from stdin). It never runs model code. It collects the worker's records
  and output (capped), enforces the wall-clock limit, reaps the worker and prints one JSON report that
  carries the nonce. The parent believes no report without its nonce, and the worker never had it.
- the worker (the fork) locks itself down before any model code runs: its own pipes on fds 0-2, every
  other inherited fd closed, a new network namespace where the kernel allows, rlimits (CPU, address space,
  file size, open files, processes), uid nobody when started as root, no new privileges, the parent-death
  signal, and an audit hook (PEP 578) that refuses sockets, process creation, signals to other processes,
  writes outside the sandbox directory, /proc, ctypes, frame and gc introspection, tracing and rlimit
  changes. It compiles the tests *before* running the program, then runs the program, then each test
  unit, and writes one record per test result, each prefixed by a per-run secret that only the worker's
  own trusted frames hold. A record without the secret, or any record after the final "done" record,
  marks the run as tampered.

Job (JSON): {"program", "units": [{"kind": "setup"|"assert"|"def"|"call", ...}], "timeout", "memory_mb",
"max_output", "max_file_bytes"}. Kinds: setup and assert are top-level statements of the tests ("assert"
produces one result); "def" defines a test function whose assert statements were wrapped by the parent
to report each result to a keyword-only `__selfimprove_record` callback; "call" calls such a function
with positional arguments and expects `count` results.
"""

import contextlib
import json
import os
import resource
import selectors
import signal
import sys
import time

# With -P (3.11+) the script's folder is not on sys.path; on 3.10 drop it, so `import code` in a program
# finds the standard library and not a sibling module of this file.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

NOBODY = 65534
CLONE_NEWUSER, CLONE_NEWNET = 0x10000000, 0x40000000
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_NO_NEW_PRIVS = 1, 4, 38
MAX_RECORD_BYTES = 1 << 20  # a worker writing more records than this is tampering
MAX_MESSAGE = 240  # characters of an exception message kept per failed test


def read_exact(fd, n):
    chunks, left = [], n
    while left:
        chunk = os.read(fd, left)
        if not chunk:
            raise EOFError(f"stdin ended {left} bytes early")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_line(fd, limit=32):
    out = b""
    while not out.endswith(b"\n"):
        byte = os.read(fd, 1)
        if not byte or len(out) > limit:
            raise EOFError("stdin ended inside the header")
        out += byte
    return out[:-1]


def libc():
    import ctypes

    lib = ctypes.CDLL(None, use_errno=True)
    lib.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    return lib


# ---------------------------------------------------------------------------------------------------------
# worker: lock down, compile, run


def _message(error):
    """'Type: message', one line, bounded; never raises (the message comes from model code)."""
    try:
        name = type(error).__name__
        text = str(error)
    except BaseException:  # a hostile __str__
        return "exception"
    line = f"{name}: {text}" if text else str(name)
    return line.replace("\n", " ").replace("\r", " ")[:MAX_MESSAGE]


def _audit_hook(sandbox, path_fds):
    """The PEP 578 hook that keeps model code inside the sandbox (installed last; cannot be removed).

    Path checks are lexical, against a sandbox that cannot contain symlinks (creating links is refused),
    with the current directory pinned to the sandbox (chdir is refused), using only builtin str methods
    so that monkeypatching os.path cannot fool it. Paths must be exact str or bytes (or an fd): a PathLike
    or str subclass could answer the check differently from the call it guards. Under /proc only the
    standard library's directory fds (`path_fds`, used when running as nobody) may be read.
    """
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
    root = sandbox.rstrip("/") + "/"
    readable_dev = {"/dev/null", "/dev/zero", "/dev/urandom", "/dev/random"}
    refused = {
        "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty", "subprocess.Popen",
        "os.kill", "os.killpg", "signal.pthread_kill", "os.chdir", "os.symlink", "os.link", "os.chroot",
        "resource.setrlimit", "resource.prlimit", "sys.settrace", "sys.setprofile", "sys._current_frames",
        "sys._current_exceptions", "sys.addaudithook", "gc.get_objects", "gc.get_referrers",
        "gc.get_referents", "os.startfile", "pty.spawn", "sys.remote_exec", "webbrowser.open",
    }  # fmt: skip
    refused_prefixes = ("socket.", "ctypes.", "_ssl.", "ssl.", "ftplib.", "http.", "smtplib.", "imaplib.")
    refused_imports = {
        "ctypes", "_ctypes", "_testcapi", "_testinternalcapi", "_testbuffer", "_testmultiphase",
        "_xxsubinterpreters", "_xxinterpchannels", "_posixshmem", "readline", "_gdbm", "_dbm", "_tkinter",
        "_curses", "_curses_panel", "_lsprof",
    }  # fmt: skip
    frame_attributes = {"tb_frame", "gi_frame", "cr_frame", "ag_frame", "f_back"}
    # event -> positions of path arguments (each must lie in the sandbox), positions of dir_fd arguments
    mutating = {
        "os.remove": ((0,), (1,)),
        "os.rmdir": ((0,), (1,)),
        "os.rename": ((0, 1), (2, 3)),
        "os.mkdir": ((0,), (2,)),
        "os.chmod": ((0,), (2,)),
        "os.chown": ((0,), (3,)),
        "os.truncate": ((0,), ()),
        "os.utime": ((0,), (3,)),
        "os.mkfifo": ((0,), (2,)),
        "os.mknod": ((0,), (3,)),
        "os.setxattr": ((0,), ()),
        "os.removexattr": ((0,), ()),
        "os.chflags": ((0,), ()),
        "os.lchflags": ((0,), ()),
        "shutil.rmtree": ((0,), (1,)),
        "shutil.move": ((0, 1), ()),
        "shutil.copyfile": ((1,), ()),
        "shutil.copytree": ((1,), ()),
        "sqlite3.connect": ((0,), ()),
    }

    library = tuple(f"/proc/self/fd/{fd}/" for fd in path_fds)

    def lexical(path):
        if type(path) is bytes:
            path = path.decode("utf-8", "surrogateescape")
        if type(path) is not str:
            raise PermissionError(f"sandbox: pass paths as str or bytes, not {type(path).__name__}")
        if not path.startswith("/"):
            path = root + path
        parts = []
        for part in path.split("/"):
            if part in ("", "."):
                continue
            if part == "..":
                if parts:
                    parts.pop()
            else:
                parts.append(part)
        return "/" + "/".join(parts)

    def inside(path):
        if type(path) is int or path is None:
            return True  # an fd the process already holds (its own sandbox files, stdout) or no path
        if path == ":memory:":
            return True
        full = lexical(path)
        return full.startswith(root) or full + "/" == root

    def check_read(path):
        if type(path) is int or path is None:
            return
        full = lexical(path)
        if (full == "/proc" or full.startswith("/proc/")) and not (full + "/").startswith(library):
            raise PermissionError(f"sandbox: reading {full} is not allowed")
        if full.startswith("/dev/") and full not in readable_dev:
            raise PermissionError(f"sandbox: opening {full} is not allowed")

    def hook(event, args):
        if event in refused or event.startswith(refused_prefixes):
            raise PermissionError(f"sandbox: {event} is not allowed")
        if event == "open":
            path, mode, flags = (*args, None, None, None)[:3]
            writing = flags & write_flags if type(flags) is int else any(c in str(mode) for c in "wax+")
            if writing and not inside(path):
                raise PermissionError(f"sandbox: writing {lexical(path)} is not allowed")
            check_read(path)
        elif event in ("os.listdir", "os.scandir"):
            check_read(args[0] if args else None)
        elif event in mutating:
            paths, dir_fds = mutating[event]
            for i in dir_fds:
                if i < len(args) and args[i] not in (None, -1):
                    raise PermissionError(f"sandbox: {event} relative to a directory fd is not allowed")
            for i in paths:
                if i < len(args) and not inside(args[i]):
                    raise PermissionError(f"sandbox: {event} outside the sandbox is not allowed")
        elif event == "object.__getattr__" and len(args) > 1 and args[1] in frame_attributes:
            raise AttributeError(f"sandbox: {args[1]} is not available")
        elif event == "sys._getframe":
            raise ValueError("sandbox: call stack introspection is not available")  # what stdlib expects
        elif event == "import" and args and args[0] in refused_imports:
            raise ImportError(f"sandbox: module {args[0]} is not available")

    return hook


def worker(job, secret, record_fd, output_fd, sandbox, lib):
    """Lock down, compile, run; never returns (os._exit)."""
    write, exit_now = os.write, os._exit
    supervisor = os.getppid()

    def emit(payload):
        write(record_fd, secret + b" " + payload.encode("utf-8", "replace") + b"\n")

    # 1. fds: stdin /dev/null, stdout+stderr -> the supervisor's output pipe, nothing else inherited
    null = os.open("/dev/null", os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(output_fd, 1)
    os.dup2(output_fd, 2)
    for fd in (null, output_fd):
        if fd > 2 and fd != record_fd:
            os.close(fd)
    os.closerange(3, record_fd)
    os.closerange(record_fd + 1, 65536)
    os.umask(0o077)

    # 2. isolation that needs privileges: network namespace, then the standard library as directory fds
    #    (so that it stays importable after dropping to nobody when /root is private), then the uid
    netns = lib.unshare(CLONE_NEWNET) == 0 or lib.unshare(CLONE_NEWUSER | CLONE_NEWNET) == 0
    root = os.geteuid() == 0
    path_fds, moved = [], {}
    if root:
        for entry in sys.path:
            if os.path.isdir(entry):
                path_fds.append(os.open(entry, os.O_RDONLY | os.O_DIRECTORY))
                moved[entry] = f"/proc/self/fd/{path_fds[-1]}"
    limit = resource.setrlimit
    cpu = int(job["timeout"]) + 1
    limit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    limit(resource.RLIMIT_FSIZE, (job["max_file_bytes"], job["max_file_bytes"]))
    limit(resource.RLIMIT_NOFILE, (64, 64))
    limit(resource.RLIMIT_CORE, (0, 0))
    if root:
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)
        sys.path[:] = list(moved.values())
        sys.path_importer_cache.clear()
        for module in list(sys.modules.values()):  # packages imported already find submodules there too
            search = getattr(module, "__path__", None)
            if isinstance(search, list):
                for old, new in moved.items():
                    search[:] = [
                        new + entry[len(old) :] if entry.startswith(old + "/") else entry for entry in search
                    ]
    # Counted per real uid: with 1, this process can create no other process or thread.
    limit(resource.RLIMIT_NPROC, (1, 1))
    lib.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    lib.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # after setuid, which clears it
    lib.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)  # setuid cleared it; /proc/self/fd (the stdlib) needs it
    if os.getppid() != supervisor:  # the supervisor died before the death signal was armed
        exit_now(3)
    os.environ.clear()
    os.environ.update({"PATH": "/usr/bin:/bin", "HOME": sandbox, "TMPDIR": sandbox, "LANG": "C.UTF-8"})
    sys.dont_write_bytecode = True
    emit(f"I netns={int(netns)} uid={os.getuid()}")

    # 3. address space last: everything above may allocate; then compile under every limit
    memory = job["memory_mb"] << 20
    limit(resource.RLIMIT_AS, (memory, memory))
    import io

    sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), "utf-8", "replace", write_through=True)
    sys.stderr = sys.stdout
    sys.stdin = None
    try:
        program = compile(job["program"], "<program>", "exec", dont_inherit=True, optimize=0)
    except BaseException as error:  # SyntaxError, MemoryError, RecursionError on hostile input
        emit("E " + _message(error))
        exit_now(0)
    units = []
    for index, unit in enumerate(job["units"]):
        kind = unit["kind"]
        if kind == "call":
            code = compile(unit["args"], "<tests>", "eval", dont_inherit=True, optimize=0)
        else:
            code = compile(unit["source"], "<tests>", "exec", dont_inherit=True, optimize=0)
        if kind == "def":  # the function's own code object, so no later rebinding of its name matters
            code = next(c for c in code.co_consts if hasattr(c, "co_name") and c.co_name == unit["name"])
        units.append((index, kind, unit.get("name"), unit.get("count", 0), code))
    del lib  # its functions stay reachable through ctypes, which the audit hook below refuses
    for name in [m for m in sys.modules if m == "ctypes" or m.startswith(("ctypes.", "_ctypes"))]:
        del sys.modules[name]
    # Signalling by pidfd raises no audit event; without a uid drop it could reach the host's processes.
    for module, name in (("os", "pidfd_open"), ("posix", "pidfd_open"), ("signal", "pidfd_send_signal"),
                         ("_signal", "pidfd_send_signal")):  # fmt: skip
        if hasattr(sys.modules.get(module), name):
            delattr(sys.modules[module], name)
    function_type = type(_message)
    base_exception, memory_error, run, evaluate, message = BaseException, MemoryError, exec, eval, _message
    sys.addaudithook(_audit_hook(sandbox, path_fds))

    # 4. the program, then every test unit; results go out as they happen
    namespace = {"__name__": "__solution__", "__builtins__": __builtins__}
    try:
        run(program, namespace)
    except base_exception as error:
        emit("E " + message(error))
        exit_now(0)
    functions = {}
    for index, kind, name, count, code in units:
        if kind == "def":
            functions[name] = function_type(code, namespace, name)
            namespace[name] = functions[name]
            continue
        if kind == "call":
            seen = []

            def record(j, error, index=index, count=count, seen=seen):
                if isinstance(j, int) and 0 <= j < count and j not in seen:
                    seen.append(j)
                    if error is None:
                        emit(f"P {index} {j}")
                    else:
                        emit(
                            f"{'M' if isinstance(error, memory_error) else 'F'} {index} {j} {message(error)}"
                        )

            try:
                arguments = evaluate(code, namespace)
                functions[name](*arguments, __selfimprove_record=record, __selfimprove_base=base_exception)
            except base_exception as error:
                for j in range(count):
                    if j not in seen:
                        record(j, error)
            for j in range(count):
                if j not in seen:
                    record(j, RuntimeError("the test function returned before this check"))
            continue
        try:
            run(code, namespace)
        except base_exception as error:
            tag = "M" if isinstance(error, memory_error) else ("F" if kind == "assert" else "S")
            emit(f"{tag} {index} 0 {message(error)}")
            if kind == "setup":
                exit_now(0)
        else:
            if kind == "assert":
                emit(f"P {index} 0")
    emit("D")
    exit_now(0)


# ---------------------------------------------------------------------------------------------------------
# supervisor


def supervise(pid, record_r, output_r, deadline, max_output):
    """Collect records and output until both pipes close and the worker exits, or the deadline passes."""
    records, output, output_bytes, timed_out, overflow = bytearray(), bytearray(), 0, False, False
    selector = selectors.DefaultSelector()
    for fd in (record_r, output_r):
        os.set_blocking(fd, False)
        selector.register(fd, selectors.EVENT_READ)
    open_fds = {record_r, output_r}
    done, status, rusage = 0, None, None
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            timed_out = True
            break
        if open_fds:
            for key, _ in selector.select(min(left, 0.5)):
                try:
                    chunk = os.read(key.fd, 65536)
                except BlockingIOError:
                    continue
                if not chunk:
                    selector.unregister(key.fd)
                    open_fds.discard(key.fd)
                elif key.fd == record_r:
                    records += chunk
                    if len(records) > MAX_RECORD_BYTES:
                        overflow = True
                        break
                else:
                    output_bytes += len(chunk)
                    if len(output) < max_output:
                        output += chunk[: max_output - len(output)]
            if overflow:
                break
            continue
        done, status, rusage = os.wait4(pid, os.WNOHANG)
        if done:
            break
        time.sleep(min(left, 0.002))
    if not done:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        _, status, rusage = os.wait4(pid, 0)
    return {
        "records": bytes(records),
        "output": bytes(output),
        "output_bytes": output_bytes,
        "timed_out": timed_out,
        "overflow": overflow,
        "status": status,
        "cpu": rusage.ru_utime + rusage.ru_stime,
        "maxrss_kb": rusage.ru_maxrss,
    }


def parse_records(data, secret):
    """Genuine records (secret-prefixed lines) in order, and whether anything else was written."""
    prefix = secret + b" "
    lines = data.split(b"\n")
    tampered = lines[-1] != b""  # a partial last line: someone wrote without our framing
    out, finished = [], False
    for line in lines[:-1]:
        if not line.startswith(prefix) or finished:
            tampered = True
            continue
        payload = line[len(prefix) :].decode("utf-8", "replace")
        finished = payload == "D"
        out.append(payload)
    return out, tampered


def serve(lib):
    """One run, in a fresh child of the zygote: fd 0 carries the job then the nonce, fd 1 the report."""
    length = int(read_line(0))
    job = json.loads(read_exact(0, length))
    secret = os.urandom(16).hex().encode()
    sandbox = os.getcwd()
    lib.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)  # the worker cannot ptrace us or read our memory or fds
    if os.geteuid() == 0:
        os.chown(sandbox, NOBODY, NOBODY)
    record_r, record_w = os.pipe()
    output_r, output_w = os.pipe()
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(record_r)
            os.close(output_r)
            worker(job, secret, record_w, output_w, sandbox, lib)
        finally:
            os._exit(4)
    os.close(record_w)
    os.close(output_w)
    nonce = read_exact(0, 33)[:32].decode()  # read only now: the worker never held it
    os.close(0)
    result = supervise(pid, record_r, output_r, start + job["timeout"], job["max_output"])
    records, tampered = parse_records(result["records"], secret)
    status = result["status"]
    report = {
        "nonce": nonce,
        "records": records,
        "tampered": tampered or result["overflow"],
        "timed_out": result["timed_out"],
        "exit_code": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
        "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
        "output": result["output"].decode("utf-8", "replace"),
        "output_bytes": result["output_bytes"],
        "cpu_seconds": result["cpu"],
        "maxrss_kb": result["maxrss_kb"],
        "seconds": time.monotonic() - start,
    }
    write_all(json.dumps(report).encode() + b"\n")


def write_all(data):
    data = memoryview(data)
    while data:
        data = data[os.write(1, data) :]


def zygote():
    """Serve runs until stdin closes: for each `<sandbox path>` line, fork a supervisor for one run.

    The zygote never runs a job itself, so no state passes from one run to the next; each supervisor
    starts its own session (the parent kills that group on timeout) and first reports its pid.
    """
    # No parent-death signal here: it fires when the parent *thread* that started us exits (pool threads
    # come and go). The zygote ends when its stdin closes, i.e. when the parent closes it or exits.
    lib = libc()
    while True:
        try:
            sandbox = read_line(0, limit=4096).decode()
        except EOFError:
            return
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.setsid()
                os.chdir(sandbox)
                write_all(b"%d\n" % os.getpid())
                serve(lib)
                code = 0
            except BaseException as error:  # a runner bug: say so on the report line, without a nonce
                write_all(json.dumps({"runner_error": f"{type(error).__name__}: {error}"}).encode() + b"\n")
            finally:
                os._exit(code)
        os.waitpid(pid, 0)


if __name__ == "__main__":
    zygote()
