#!/usr/bin/env python3
"""Calls between the modules of broker/, edge/ and common/ go one way.

Reads the object files of this build tree with nm: a module is one .c
file; module A depends on B when A's object uses a symbol B's defines.
Fails, printing the cycle, when any module depends on itself through
others (the broker's endpoints calling back into broker.c, client.c and
worker.c calling each other: docs/architecture.md §2.6). Usage:
check_deps.py BUILD_DIR
"""
import pathlib
import subprocess
import sys


def symbols(obj):
    out = subprocess.run(["nm", "--defined-only", "-g", str(obj)], capture_output=True,
                         text=True, check=True).stdout
    defined = {line.split()[-1] for line in out.splitlines() if line.strip()}
    out = subprocess.run(["nm", "-u", str(obj)], capture_output=True, text=True,
                         check=True).stdout
    used = {line.split()[-1] for line in out.splitlines() if line.strip()}
    return defined, used


def graph(build):
    objs = {}
    for lib in ("herald_common", "herald_ws", "herald_broker_lib", "herald_edge_lib"):
        for obj in sorted((build / "CMakeFiles" / f"{lib}.dir").rglob("*.o")):
            name = obj.relative_to(build / "CMakeFiles" / f"{lib}.dir").as_posix()
            objs[name.removesuffix(".o")] = obj
    if not objs:
        sys.exit(f"no object files under {build}/CMakeFiles: build first")
    owner, uses = {}, {}
    for mod, obj in objs.items():
        defined, used = symbols(obj)
        for sym in defined:
            owner[sym] = mod
        uses[mod] = used
    return {mod: {owner[s] for s in used if s in owner and owner[s] != mod}
            for mod, used in uses.items()}


def find_cycle(deps):
    state, stack = {}, []

    def visit(mod):
        state[mod] = 1
        stack.append(mod)
        for nxt in sorted(deps[mod]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[mod] = 2
        return None

    for mod in sorted(deps):
        if mod not in state:
            found = visit(mod)
            if found:
                return found
    return None


def main():
    deps = graph(pathlib.Path(sys.argv[1]))
    cycle = find_cycle(deps)
    if cycle:
        print("dependency cycle: " + " -> ".join(cycle))
        return 1
    print(f"{len(deps)} modules, no dependency cycle")
    return 0


if __name__ == "__main__":
    sys.exit(main())
