#!/usr/bin/env python3
"""Code-size and stack-frame attribution of a Cortex-M ELF built with line tables.

Usage: attribution.py OBJDUMP SYMBOLIZER ELF [ELF_BASELINE]

Every instruction address of .text is symbolized with its inline chain (llvm-symbolizer
--inlining) and charged to the innermost frame that lies in one of our source trees
(durability core, durability embedded, the firmware harness); code with no such frame
(an outlined std/compiler_builtins function) is charged by its own function name. So a
core::slice helper inlined into a core function counts for the core, and a harness
closure inlined into the core's scan counts for the harness.

Prints: bytes per crate (and the delta to the baseline if given), bytes per source file
and per function of our crates (inclusive of what was inlined into them), who calls the
outlined std functions, and the stack frame each function reserves (push/vpush/sub sp).
"""
import collections
import re
import subprocess
import sys

import os

_ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
OURS = [
    (_ROOT + "/core/src/", "durability_core"),
    (_ROOT + "/embedded-backend/src/", "durability_embedded"),
    (_ROOT + "/embedded-backend/firmware-size/src/", "harness"),
]


def std_category(func, path):
    f, p = func or "", path or ""
    if "compiler_builtins" in f or f.startswith("__aeabi") or f in ("memcpy", "memset", "memcmp", "memmove") \
            or "compiler_builtins" in p or f.startswith("__"):
        return "compiler_builtins (mem*, u64 div)"
    if "core::fmt" in f or "/fmt/" in p or "core..fmt" in f:
        return "core::fmt"
    if "panic" in f or "/panicking" in p or "slice_index_fail" in f or "slice_end_index" in f \
            or "slice_start_index" in f or "unwrap_failed" in f or "expect_failed" in f or "index_fail" in f:
        return "core panics"
    if "cortex_m" in f or "cortex-m" in p:
        return "cortex-m / rt / semihosting"
    if f in ("Reset", "main", "DefaultHandler_", "HardFault_", "DefaultPreInit", "__pre_init"):
        return "cortex-m / rt / semihosting"
    if "durability_core" in f:
        return "durability_core"
    if "durability_embedded" in f:
        return "durability_embedded"
    if "firmware_size" in f:
        return "harness"
    if "crc" in f:
        return "crc crate"
    return "other core (slice/array index, iter, outlined bits)"


def ours(path):
    for needle, name in OURS:
        if path and path.startswith(needle):
            return name
    return None


def disassemble(objdump, elf):
    """(function, [(addr, size, text)]) for every function in .text, and literal words."""
    out = subprocess.run([objdump, "-d", "--no-show-raw-insn", "-C", elf],
                         capture_output=True, text=True, check=True).stdout
    funcs = []
    cur = None
    for line in out.splitlines():
        m = re.match(r"^([0-9a-f]+) <(.*)>:$", line)
        if m:
            cur = (m.group(2), [])
            funcs.append(cur)
            continue
        m = re.match(r"^\s+([0-9a-f]+):\s+(.*)$", line)
        if m and cur is not None:
            cur[1].append((int(m.group(1), 16), m.group(2).strip()))
    return funcs


def text_range(objdump, elf):
    out = subprocess.run([objdump, "-h", elf], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[1] == ".text":
            size, addr = int(parts[2], 16), int(parts[3], 16)
            return addr, addr + size
    raise SystemExit("no .text")


def symbolize(symbolizer, elf, addrs):
    """addr -> list of (function, file) innermost first."""
    inp = "\n".join(hex(a) for a in addrs) + "\n"
    out = subprocess.run([symbolizer, "--inlining", "--demangle", "--functions=linkage",
                          "--obj=" + elf], input=inp, capture_output=True, text=True).stdout
    res = {}
    blocks = out.split("\n\n")
    for a, block in zip(addrs, blocks):
        lines = [l for l in block.strip().splitlines()]
        chain = []
        for i in range(0, len(lines) - 1, 2):
            chain.append((lines[i].strip(), lines[i + 1].strip().rsplit(":", 2)[0]))
        res[a] = chain
    return res


def short(fn):
    fn = re.sub(r"::h[0-9a-f]{16}$", "", fn)
    fn = fn.replace("$LT$", "<").replace("$GT$", ">").replace("$C$", ",").replace("$u20$", " ") \
        .replace("$RF$", "&").replace("$u7b$", "{").replace("$u7d$", "}").replace("..", "::")
    return fn


FRAME_RE = [
    (re.compile(r"^(push|push\.w|stmdb)\s+(sp!,\s*)?\{(.*)\}"), "regs"),
    (re.compile(r"^vpush\s+\{(.*)\}"), "vregs"),
    (re.compile(r"^(sub|sub\.w|subw)\s+sp,\s*(sp,\s*)?#(0x[0-9a-f]+|\d+)"), "sub"),
]


def count_regs(lst):
    n = 0
    for part in lst.split(","):
        part = part.strip()
        m = re.match(r"([rds])(\d+)-[rds](\d+)", part)
        if m:
            n += (int(m.group(3)) - int(m.group(2)) + 1) * (8 if m.group(1) == "d" else 4)
        elif part.startswith("d"):
            n += 8
        elif part:
            n += 4
    return n


def frame_size(insns):
    total = 0
    for _, text in insns[:8]:
        for rx, kind in FRAME_RE:
            m = rx.match(text)
            if not m:
                continue
            if kind == "regs":
                total += count_regs(m.group(3))
            elif kind == "vregs":
                total += count_regs(m.group(1))
            else:
                total += int(m.group(3), 0)
    return total


def analyse(objdump, symbolizer, elf):
    lo, hi = text_range(objdump, elf)
    funcs = disassemble(objdump, elf)
    insns = []  # (addr, size, func)
    for name, body in funcs:
        for i, (a, _) in enumerate(body):
            nxt = body[i + 1][0] if i + 1 < len(body) else None
            insns.append((a, name, nxt))
    insns = [x for x in insns if lo <= x[0] < hi]
    insns.sort()
    sized = []
    for i, (a, name, nxt) in enumerate(insns):
        end = nxt if nxt is not None else (insns[i + 1][0] if i + 1 < len(insns) else hi)
        sized.append((a, end - a, name))
    chains = symbolize(symbolizer, elf, [a for a, _, _ in sized])
    crate = collections.Counter()
    per_file = collections.Counter()
    per_fn = collections.Counter()
    std_fn = collections.Counter()
    per_base = collections.Counter()
    instances = collections.defaultdict(set)
    for a, size, name in sized:
        chain = chains.get(a, [])
        hit = None
        for fn, path in chain:  # innermost first
            c = ours(path)
            if c:
                hit = (c, fn, path)
                break
        if hit:
            c, fn, path = hit
            crate[c] += size
            per_file[path[len(_ROOT) + 1:], c] += size
            per_fn[c, short(fn)] += size
            base = re.sub(r"<.*>", "", short(fn))
            per_base[c, path[len(_ROOT) + 1:], base] += size
            instances[c, path[len(_ROOT) + 1:], base].add(short(fn))
        else:
            outer = chain[-1] if chain else (name, "")
            cat = std_category(name, outer[1])
            crate[cat] += size
            std_fn[cat, short(name)] += size
    frames = {name: frame_size(body) for name, body in funcs if body and lo <= body[0][0] < hi}
    sizes = {short(name): (body[-1][0] - body[0][0]) for name, body in funcs if body}
    calls = collections.defaultdict(collections.Counter)
    edges = collections.defaultdict(set)  # caller -> {(callee, tail)}
    for name, body in funcs:
        for a, text in body:
            m = re.match(r"^(bl|blx|b\.w|b)\s+0x[0-9a-f]+\s+<([^>+]+)>", text)
            if m and m.group(2) != name:
                edges[name].add((m.group(2), not m.group(1).startswith("bl")))
    for name, body in funcs:
        for a, text in body:
            m = re.match(r"^(bl|blx|b\.w|b)\s+0x[0-9a-f]+\s+<([^>+]+)>", text)
            if m and m.group(2) != name:
                callee = short(m.group(2))
                caller_chain = chains.get(a, [])
                who = next((short(fn) for fn, path in caller_chain if ours(path)), short(name))
                calls[callee][who] += 1
    return crate, per_file, per_fn, std_fn, frames, calls, hi - lo, per_base, instances, edges


# Calls taken only on a failure that ends the program (panics, FAIL reports).
PANIC_PATH = re.compile(r"panic|unwind|index_fail|unwrap_failed|expect_failed|len_mismatch|"
                        r"firmware_size::fail|core::fmt|hstdout")


def deepest(fn, frames, edges, memo, stack=()):
    """(bytes, path) of the deepest direct-call chain from `fn` (indirect calls unseen)."""
    if fn in memo:
        return memo[fn]
    if fn in stack:
        return (0, [fn + " (recursion)"])
    own = frames.get(fn, 0)
    best = (own, [f"{short(fn)} [{own}]"])
    for callee, tail in edges.get(fn, ()):
        if PANIC_PATH.search(callee):
            continue
        d, path = deepest(callee, frames, edges, memo, stack + (fn,))
        total = d if tail else own + d
        if total > best[0]:
            best = (total, [f"{short(fn)} [{own}{' tail' if tail else ''}]"] + path)
    memo[fn] = best
    return best


def main():
    objdump, symbolizer, elf = sys.argv[1:4]
    base = sys.argv[4] if len(sys.argv) > 4 else None
    crate, per_file, per_fn, std_fn, frames, calls, text, per_base, instances, edges = \
        analyse(objdump, symbolizer, elf)
    bcrate = analyse(objdump, symbolizer, base)[0] if base else collections.Counter()
    print(f"\n.text attribution of {elf} ({text} B .text)")
    print(f"{'crate / kind':<40}{'full':>8}{'empty':>8}{'delta':>8}")
    for c in sorted(set(crate) | set(bcrate), key=lambda c: -(crate[c] - bcrate[c])):
        print(f"{c:<40}{crate[c]:>8}{bcrate[c]:>8}{crate[c] - bcrate[c]:>+8}")
    print(f"{'total':<40}{sum(crate.values()):>8}{sum(bcrate.values()):>8}"
          f"{sum(crate.values()) - sum(bcrate.values()):>+8}")
    if base:
        lib = sum(crate[c] - bcrate[c] for c in set(crate) | set(bcrate)
                  if c not in ("harness", "cortex-m / rt / semihosting"))
        glue = crate["harness"] - bcrate["harness"]
        print(f"library .text (delta without the harness's own calls and checks): {lib} B"
              f" ({lib / 1024:.2f} KiB); harness glue only the full build has: {glue:+} B")
    print("\nbytes per source file of our crates (inlined code counted where it was written)")
    for (path, c), n in per_file.most_common():
        print(f"  {n:>6}  {c:<20} {path}")
    print("\nlibrary functions (all instances summed; code inlined from std counted in;"
          " x N = N distinct monomorphizations or inlined copies), >= 48 B")
    for (c, path, base), n in per_base.most_common():
        if n >= 48 and c != "harness":
            k = len(instances[c, path, base])
            print(f"  {n:>6}  x{k:<2} {path}: {base}")
    print("\nlibrary function instances >= 200 B (generic arguments shown)")
    for (c, fn), n in per_fn.most_common():
        if n >= 200 and c != "harness":
            print(f"  {n:>6}  {fn[:400]}")
    print("\noutlined std / compiler_builtins functions (>= 32 B) and their callers")
    for (cat, fn), n in std_fn.most_common():
        if n >= 32 or (n >= 4 and cat.startswith("compiler_builtins")):
            who = ", ".join(f"{w} x{k}" for w, k in calls.get(fn, collections.Counter()).most_common(6))
            print(f"  {n:>6}  {cat:<34} {fn}\n          called from: {who or '-'}")
    memo = {}
    print("\ndeepest direct-call chains from each measured call (frame bytes in brackets;"
          " a dyn call into a harness closure is not followed; panic/report paths left out)")
    roots = sorted({f for f in frames if "lib::_{{closure}}" in short(f) or short(f).startswith("firmware_size::work::")})
    for r in sorted(roots, key=lambda f: -deepest(f, frames, edges, memo)[0])[:8]:
        d, path = deepest(r, frames, edges, memo)
        print(f"  {d:>6}  " + "\n          -> ".join(p[:110] for p in path))
    print("\nstack frames reserved by a function's prologue (push + vpush + sub sp), >= 64 B")
    for fn, n in sorted(frames.items(), key=lambda kv: -kv[1]):
        if n >= 64:
            print(f"  {n:>6}  {short(fn)[:200]}")


if __name__ == "__main__":
    main()
