"""Probes shared by the local and Docker sandbox tests: real misbehaviour, run inside a contestant."""

COMMON = """
import os, socket, subprocess, sys, time
from grader.contestant import probe, student

@probe
def echo(x):
    return {"x": x * 2, "sum": float(x.sum())}

@probe
def hang():
    while True:
        pass

@probe
def hog(mb):
    blocks = []
    while True:
        blocks.append(bytearray(b"x") * (mb << 20))  # written, so resident

@probe
def huge():
    return len(bytearray(64 << 30))

@probe
def connect():
    try:
        socket.create_connection(("10.255.255.1", 80), timeout=3)
        return "connected"
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"

@probe
def spam(mb):
    line = "y" * 1023 + "\\n"
    for _ in range(mb * 1024):
        sys.stdout.write(line)
    return "done"

@probe
def hard_exit():
    os._exit(0)

@probe
def soft_exit():
    sys.exit(0)

@probe
def spawn(n):
    procs = [subprocess.Popen(["sleep", "30"]) for _ in range(n)]
    time.sleep(5)
    return len(procs)

@probe
def big_file(mb):
    with open("big.bin", "wb") as f:
        for _ in range(mb):
            f.write(b"z" * (1 << 20))
    return "written"
@probe
def string_hash():
    return hash("torch-grader")

@probe
def shout_then_hang():
    print("about to hang")  # no flush: the contestant's output must be unbuffered
    while True:
        pass

"""
