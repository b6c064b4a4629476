"""``make bench``: the real daemon, a bare Autobahn relay and a load generator, side by side.

Starts ``python -m twisted s2analyzer`` (the same plugin users run) as subprocesses, one per
configuration (validation on, forward-only ``--no-validate``, store on/off when the daemon has
store flags), the bare forwarder of bench/relay.py, and drives them with bench/loadgen.py in a
separate process. Prints a table, checks the targets of issues 2 and 4, writes
bench/results/latest.json. Never a test: nothing here asserts, it measures.

    make bench                                   # full run (about 4 minutes)
    make bench BENCH_ARGS="--quick"              # shorter runs, one repeat, 200 idle pairs
    make bench BENCH_ARGS="--only t10,latency --duration 3"
    make bench BENCH_ARGS="--profile"            # cProfile the daemons, top functions printed

Scenarios (``--only`` takes a comma-separated list):
  latency  1 pair, one message in flight (ping-pong): direct (no proxy), relay, daemon fwd/validate
  t10      10 pairs throughput: direct (the load generator's own ceiling), relay, daemon fwd/validate
  t100     100 pairs throughput: daemon fwd/validate (validation cost as a ratio)
  memory   RSS per idle conversation: 1,000 idle pairs (after the S2 set-up) minus none
  store    100 pairs with the history store on and off, write-queue depth from /backend/health
  micro    bench/hotpath.py (s2proxy's own CPU per message, by stage, no sockets),
           bench/autobahn_cost.py (Autobahn's CPU per relayed message, NVX on and off),
           bench/validation_bench.py and bench/checker_bench.py when present
"""

import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RESULTS = os.path.join(HERE, "results")
PY = sys.executable
TICKS = os.sysconf("SC_CLK_TCK")
SCENARIOS = ("latency", "t10", "t100", "memory", "store", "micro")


# -- processes ---------------------------------------------------------------------------------

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_listening(port, proc, what, timeout=60.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("%s exited with %s before listening" % (what, proc.returncode))
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("%s did not listen on %d within %ss" % (what, port, timeout))


def family(pid):
    """``pid`` and its child processes (the daemon's analysis worker counts as the daemon)."""
    pids = [pid]
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            pids.extend(int(p) for p in f.read().split())
    except OSError:
        pass
    return pids


def cpu_ticks(pid):
    """utime + stime of a process and its children, in seconds."""
    total = 0
    for p in family(pid):
        try:
            with open("/proc/%d/stat" % p) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / TICKS


def rss_kib(pid):
    """Resident memory of a process and its children, KiB."""
    total = None
    for p in family(pid):
        try:
            with open("/proc/%d/status" % p) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total = (total or 0) + int(line.split()[1])
        except OSError:
            continue
    return total


def machine_busy():
    """(busy, total) jiffies of all CPUs, to show how much else ran on the machine meanwhile."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


class Server:
    """A relay under test: the daemon in one configuration, or bench/relay.py."""

    def __init__(self, name, kind, flags=(), profile=False, workdir=None):
        self.name = name
        self.kind = kind
        self.flags = list(flags)
        self.profile = profile
        self.workdir = workdir
        self.proc = None
        self.port = None
        self.log_path = None
        self.profile_path = None

    def start(self):
        env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
        env.setdefault("LOG_LEVEL", "INFO")
        os.makedirs(self.workdir, exist_ok=True)
        self.log_path = os.path.join(RESULTS, "%s.log" % self.name)
        if self.kind == "relay":
            self.proc = subprocess.Popen([PY, os.path.join(HERE, "relay.py"), "--port", "0"], env=env,
                                         stdout=subprocess.PIPE, stderr=open(self.log_path, "w"),
                                         cwd=self.workdir, text=True)
            self.port = json.loads(self.proc.stdout.readline())["port"]
        else:
            self.port = free_port()
            if self.profile:
                self.profile_path = os.path.join(RESULTS, "profile-%s.prof" % self.name)
                cmd = [PY, os.path.join(HERE, "profiled_daemon.py"), self.profile_path]
            else:
                cmd = [PY, "-m", "twisted"]
            cmd += ["--log-format=text", "--log-file=" + self.log_path, "s2analyzer",
                    "--port", "tcp:%d:interface=127.0.0.1" % self.port] + self.flags
            self.proc = subprocess.Popen(cmd, env=env, cwd=self.workdir, stdout=subprocess.DEVNULL,
                                         stderr=open(self.log_path + ".stderr", "w"))
        wait_listening(self.port, self.proc, self.name)
        return self

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def log_tail(self, lines=5):
        try:
            with open(self.log_path) as f:
                return f.read().splitlines()[-lines:]
        except OSError:
            return []

    def health(self):
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/backend/health" % self.port, timeout=2) as r:
                return json.loads(r.read())
        except Exception:
            return None


def find_queue_depth(health):
    """The write-queue depth in /backend/health, wherever the history engineer put it."""
    if not isinstance(health, dict):
        return None
    for key, value in health.items():
        if "queue" in key.lower():
            if isinstance(value, (int, float)):
                return value
            if isinstance(value, dict):
                for k, v in value.items():
                    if isinstance(v, (int, float)) and ("depth" in k or "size" in k or "len" in k):
                        return v
        if isinstance(value, dict):
            found = find_queue_depth(value)
            if found is not None:
                return found
    return None


class LoadRun:
    """One bench/loadgen.py process, with the CPU of the server sampled over the measuring window."""

    _next_pair = [0]

    def __init__(self, server, pairs, window, args, mode="traffic", direct=False, poll_health=False):
        self.server = server
        self.pairs = pairs
        self.window = window
        self.args = args
        self.mode = mode
        self.direct = direct
        self.poll_health = poll_health
        first = LoadRun._next_pair[0]
        LoadRun._next_pair[0] += pairs
        self.cmd = [PY, os.path.join(HERE, "loadgen.py"), "--mode", mode, "--pairs", str(pairs),
                    "--window", str(window), "--warmup", str(args.warmup), "--duration", str(args.duration),
                    "--first-pair", str(first)]
        if direct:
            self.cmd.append("--direct")
        else:
            self.cmd += ["--port", str(server.port)]

    def run(self):
        proc = subprocess.Popen(self.cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        server_pid = self.server.proc.pid if self.server is not None else None
        samples = {}
        depths = []
        stop_polling = threading.Event()
        result = None
        result_rss = None
        for line in proc.stdout:
            msg = json.loads(line)
            event = msg.get("event")
            if event == "measure_start":
                samples["start"] = self._sample(server_pid, proc.pid)
                if self.poll_health:
                    threading.Thread(target=self._poll, args=(depths, stop_polling), daemon=True).start()
            elif event == "measure_end":
                samples["end"] = self._sample(server_pid, proc.pid)
                stop_polling.set()
                if server_pid is not None:
                    result_rss = rss_kib(server_pid)
            elif event in ("connected", "ready"):
                pass
            else:
                result = msg
        proc.stdin.close()
        proc.wait()
        stop_polling.set()
        if result is None:
            result = {"error": "the load generator printed no result (exit %s)" % proc.returncode}
        if "start" in samples and "end" in samples:
            s, e = samples["start"], samples["end"]
            wall = e["wall"] - s["wall"]
            if server_pid is not None:
                result["server_cpu"] = (e["server"] - s["server"]) / wall
                # CPU per delivered message: robust against other load on the shared cores.
                if result.get("delivered"):
                    result["server_us_per_msg"] = (e["server"] - s["server"]) / result["delivered"] * 1e6
            result["loadgen_cpu_proc"] = (e["loadgen"] - s["loadgen"]) / wall
            busy = (e["busy"][0] - s["busy"][0]) / max(1, e["busy"][1] - s["busy"][1])
            result["machine_busy_cores"] = busy * os.cpu_count()
            result["other_cores"] = max(0.0, result["machine_busy_cores"] - result.get("server_cpu", 0)
                                        - result["loadgen_cpu_proc"])
        if result_rss is not None:
            result["server_rss_mib"] = result_rss / 1024.0
        if depths:
            result["queue_depth_max"] = max(depths)
            result["queue_depth_samples"] = len(depths)
        return result

    @staticmethod
    def _sample(server_pid, loadgen_pid):
        return {"wall": time.time(), "server": cpu_ticks(server_pid) if server_pid else 0.0,
                "loadgen": cpu_ticks(loadgen_pid), "busy": machine_busy()}

    def _poll(self, depths, stop):
        while not stop.is_set():
            depth = find_queue_depth(self.server.health())
            if depth is not None:
                depths.append(depth)
            stop.wait(0.5)


def idle_memory(server, pairs):
    """RSS growth of ``server`` per idle conversation (pairs connected after the S2 set-up)."""
    warm = subprocess.Popen([PY, os.path.join(HERE, "loadgen.py"), "--mode", "idle", "--pairs", "2",
                             "--port", str(server.port), "--first-pair", "900000"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    warm.stdout.readline()
    warm.stdin.close()
    warm.wait()
    time.sleep(1.0)
    before = rss_kib(server.proc.pid)
    proc = subprocess.Popen([PY, os.path.join(HERE, "loadgen.py"), "--mode", "idle", "--pairs", str(pairs),
                             "--port", str(server.port), "--first-pair", "1000000"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    ready = json.loads(proc.stdout.readline())
    if ready.get("event") != "ready":
        proc.stdin.close()
        proc.wait()
        return {"error": "idle load generator: %s" % ready}
    time.sleep(1.5)
    after = rss_kib(server.proc.pid)
    proc.stdin.close()
    tail = proc.stdout.read().splitlines()
    proc.wait()
    res = json.loads(tail[-1]) if tail else {}
    return {"pairs": pairs, "rss_before_kib": before, "rss_after_kib": after,
            "kib_per_conversation": (after - before) / pairs, "connect_seconds": ready.get("seconds"),
            "mismatches": res.get("mismatches"), "errors": res.get("errors")}


# -- scenarios ---------------------------------------------------------------------------------

def daemon_flags(config, store_flags):
    flags = []
    if config.endswith("fwd"):
        flags.append("--no-validate")
    if "store" not in config and "--no-store" in store_flags:
        flags.append("--no-store")
    return flags


def run_micro(args):
    out = {}
    for name in ("hotpath", "autobahn_cost", "validation_bench", "checker_bench"):
        path = os.path.join(HERE, name + ".py")
        if not os.path.exists(path):
            out[name] = {"status": "absent"}
            continue
        env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
        if args.quick:
            env["BENCH_QUICK"] = "1"
        t0 = time.time()
        try:
            p = subprocess.run([PY, path], env=env, cwd=ROOT, capture_output=True, text=True, timeout=180)
            parsed = None
            for line in reversed(p.stdout.strip().splitlines()):
                try:
                    parsed = json.loads(line)
                    break
                except ValueError:
                    continue
            out[name] = {"status": "ok" if p.returncode == 0 else "exit %d" % p.returncode,
                         "seconds": time.time() - t0, "stdout": p.stdout[-4000:], "stderr": p.stderr[-2000:],
                         "json": parsed}
        except subprocess.TimeoutExpired:
            out[name] = {"status": "timeout"}
    return out


def store_capabilities():
    """Which store flags the daemon has (the history issue adds them)."""
    env = dict(os.environ, PYTHONPATH=ROOT)
    p = subprocess.run([PY, "-m", "twisted", "s2analyzer", "--help"], env=env, capture_output=True,
                       text=True, cwd=tempfile.gettempdir())
    return [flag for flag in ("--no-store", "--data-dir") if flag in p.stdout]


def median_of(runs, key):
    values = [r.get(key) for r in runs if isinstance(r, dict) and isinstance(r.get(key), (int, float))]
    return statistics.median(values) if values else None


def main():
    parser = argparse.ArgumentParser(description="s2proxy benchmarks (see BENCHMARKS.md)")
    parser.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated: " + ",".join(SCENARIOS))
    parser.add_argument("--duration", type=float, default=5.0, help="measuring window per run, seconds")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=2, help="repeats of every traffic run; medians reported")
    parser.add_argument("--idle-pairs", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="2 s windows, one repeat, 200 idle pairs")
    parser.add_argument("--profile", action="store_true", help="run the daemons under cProfile; print hot spots")
    parser.add_argument("--output", default=os.path.join(RESULTS, "latest.json"))
    args = parser.parse_args()
    if args.quick:
        args.duration, args.warmup, args.repeat = 2.0, 0.5, 1
        args.idle_pairs = min(args.idle_pairs, 200)
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    for s in only:
        if s not in SCENARIOS:
            parser.error("--only: unknown scenario %r (known: %s)" % (s, ", ".join(SCENARIOS)))
    os.makedirs(RESULTS, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="s2bench-")
    started = time.time()

    # Only the store runs keep a history: the others measure forwarding and validation alone.
    store_flags = store_capabilities()
    configs = []
    if set(only) & {"latency", "t10", "t100", "memory"}:
        configs += ["validate", "fwd"]
    if set(only) & {"latency", "t10"}:
        configs.append("relay")
    if "store" in only and "--data-dir" in store_flags:
        # Store off is the "validate" daemon (validation on, --no-store); store on differs only in that.
        configs += ["validate", "store_on"]
    configs = list(dict.fromkeys(configs))

    servers = {}
    measurements = {}   # name -> list of results (one per repeat)
    plan = []           # (name, server name, pairs, window, direct, poll_health)
    if "latency" in only:
        plan += [("latency/direct", None, 1, 1, True, False), ("latency/relay", "relay", 1, 1, False, False),
                 ("latency/fwd", "fwd", 1, 1, False, False), ("latency/validate", "validate", 1, 1, False, False)]
    if "t10" in only:
        plan += [("t10/direct", None, 10, 8, True, False), ("t10/relay", "relay", 10, 8, False, False),
                 ("t10/fwd", "fwd", 10, 8, False, False), ("t10/validate", "validate", 10, 8, False, False)]
    if "t100" in only:
        plan += [("t100/fwd", "fwd", 100, 4, False, False), ("t100/validate", "validate", 100, 4, False, False)]
    if "store" in only and "--data-dir" in store_flags:
        plan += [("store/off", "validate", 100, 4, False, True), ("store/on", "store_on", 100, 4, False, True)]

    memory = {}
    micro = {}
    errors = {}
    try:
        for config in configs:
            if config == "relay":
                servers[config] = Server(config, "relay", workdir=os.path.join(workdir, config))
            else:
                flags = daemon_flags(config, store_flags)
                if config == "store_on":
                    data_dir = os.path.join(workdir, config, "data")
                    os.makedirs(data_dir, exist_ok=True)
                    flags += ["--data-dir", data_dir]
                servers[config] = Server(config, "daemon", flags, profile=args.profile,
                                         workdir=os.path.join(workdir, config))
            print("starting %-9s %s" % (config, " ".join(servers[config].flags)), flush=True)
            try:
                servers[config].start()
            except RuntimeError as e:
                # One configuration that cannot start (a flag that changed) must not stop the rest.
                print("  could not start %s: %s; log: %s" % (config, e, servers[config].log_path), flush=True)
                errors[config] = str(e)
                servers.pop(config).stop()
        if "memory" in only:
            for config in ("validate", "fwd"):
                if config not in servers:
                    continue
                print("memory: %d idle pairs through %s" % (args.idle_pairs, config), flush=True)
                memory[config] = idle_memory(servers[config], args.idle_pairs)
        for rep in range(args.repeat):
            for name, server_name, pairs, window, direct, poll in plan:
                server = servers.get(server_name) if server_name else None
                if server_name and server is None:
                    continue
                res = LoadRun(server, pairs, window, args, direct=direct, poll_health=poll).run()
                measurements.setdefault(name, []).append(res)
                print("  [%d/%d] %-18s %s" % (rep + 1, args.repeat, name, _short(res)), flush=True)
        if "micro" in only:
            print("micro-benchmarks ...", flush=True)
            micro = run_micro(args)
    finally:
        logs = {}
        for name, server in servers.items():
            server.stop()
            logs[name] = server.log_tail()
        shutil.rmtree(workdir, ignore_errors=True)

    summary = summarise(measurements, memory, store_flags, "store" in only)
    report = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "seconds": time.time() - started,
        "machine": machine_info(),
        "args": vars(args),
        "store_flags": store_flags,
        "measurements": measurements,
        "memory": memory,
        "micro": micro,
        "summary": summary,
        "errors": errors,
    }
    print_table(report)
    if args.profile:
        print_profiles(servers)
    with open(args.output, "w") as f:
        json.dump(report, f, indent=1)
    print("\nwrote %s (%.0f s)" % (os.path.relpath(args.output), report["seconds"]))
    return 0


def _short(res):
    if "error" in res:
        return "ERROR %s" % res["error"]
    return "%8.0f msg/s  p50 %.3f ms  p99 %.3f ms  server cpu %.2f (%.1f us/msg)  loadgen cpu %.2f  others %.2f" % (
        res["msg_per_s"], res["p50_ms"] or 0, res["p99_ms"] or 0, res.get("server_cpu", 0),
        res.get("server_us_per_msg", 0),
        res.get("loadgen_cpu_proc", 0), res.get("other_cores", 0))


def summarise(measurements, memory, store_flags, store_wanted):
    rows = {}
    for name, runs in measurements.items():
        rows[name] = {key: median_of(runs, key) for key in
                      ("msg_per_s", "p50_ms", "p99_ms", "server_cpu", "server_us_per_msg", "loadgen_cpu_proc",
                       "other_cores", "server_rss_mib",
                       "loadgen_us_per_msg", "queue_depth_max")}
        rows[name]["runs"] = len(runs)
        rows[name]["mismatches"] = sum(r.get("mismatches") or 0 for r in runs)
    targets = {}

    def get(name, key):
        return rows.get(name, {}).get(key)

    def ratio(a, b):
        return a / b if a is not None and b else None

    direct = get("latency/direct", "p50_ms")
    for config in ("validate", "fwd"):
        p50 = get("latency/" + config, "p50_ms")
        if p50 is not None and direct is not None:
            targets["added_latency_p50_ms_" + config] = {
                "value": p50 - direct, "target": "< 1 ms", "met": p50 - direct < 1.0}
    r = ratio(get("t100/validate", "msg_per_s"), get("t100/fwd", "msg_per_s"))
    if r is not None:
        targets["validation_ratio_100_pairs"] = {"value": r, "target": ">= 0.80", "met": r >= 0.80}
    # The same ratio from CPU per message (capacity of one core), which other load disturbs less.
    r = ratio(get("t100/fwd", "server_us_per_msg"), get("t100/validate", "server_us_per_msg"))
    if r is not None:
        targets["validation_ratio_100_pairs_cpu"] = {"value": r, "target": ">= 0.80", "met": r >= 0.80}
    relay = get("t10/relay", "msg_per_s")
    relay_us = get("t10/relay", "server_us_per_msg")
    for config in ("validate", "fwd"):
        r = ratio(get("t10/" + config, "msg_per_s"), relay)
        if r is not None:
            targets["t10_%s_vs_relay" % config] = {"value": r, "target": "close to the bare relay (>= 0.80)",
                                                   "met": r >= 0.80}
        r = ratio(relay_us, get("t10/" + config, "server_us_per_msg"))
        if r is not None:
            targets["t10_%s_vs_relay_cpu" % config] = {"value": r, "target": "close to the bare relay (>= 0.80)",
                                                       "met": r >= 0.80}
    if "validate" in memory and "kib_per_conversation" in memory["validate"]:
        v = memory["validate"]["kib_per_conversation"]
        targets["memory_kib_per_idle_conversation"] = {"value": v, "target": "< 32 KiB", "met": v < 32}
    if store_wanted:
        if "--data-dir" not in store_flags:
            targets["store_cost"] = {"value": None, "target": "< 15%", "met": None,
                                     "note": "the daemon has no --data-dir flag yet (issue 4 not landed)"}
        else:
            on, off = get("store/on", "msg_per_s"), get("store/off", "msg_per_s")
            if on and off:
                cost = 1 - on / off
                targets["store_cost"] = {"value": cost, "target": "< 15%", "met": cost < 0.15}
            depth = get("store/on", "queue_depth_max")
            targets["store_queue_depth_max"] = {"value": depth, "target": "bounded",
                                                "met": None if depth is None else True}
    return {"rows": rows, "targets": targets}


def print_table(report):
    rows = report["summary"]["rows"]
    print("\n%-18s %10s %9s %9s %8s %9s %8s %8s %7s %5s" % (
        "run (median)", "msg/s", "p50 ms", "p99 ms", "srv cpu", "srv us/msg", "srv MiB", "gen cpu", "others", "runs"))
    for name in sorted(rows, key=_order):
        r = rows[name]
        print("%-18s %10s %9s %9s %8s %9s %8s %8s %7s %5d%s" % (
            name, _fmt(r["msg_per_s"], "%.0f"), _fmt(r["p50_ms"], "%.3f"), _fmt(r["p99_ms"], "%.3f"),
            _fmt(r["server_cpu"], "%.2f"), _fmt(r["server_us_per_msg"], "%.1f"), _fmt(r["server_rss_mib"], "%.0f"),
            _fmt(r["loadgen_cpu_proc"], "%.2f"), _fmt(r["other_cores"], "%.2f"),
            r["runs"], "  MISMATCHES %d" % r["mismatches"] if r["mismatches"] else ""))
    for config, m in report["memory"].items():
        if "error" in m:
            print("memory/%-11s ERROR %s" % (config, m["error"]))
        else:
            print("memory/%-11s %d idle pairs: RSS %d -> %d KiB = %.1f KiB per conversation" % (
                config, m["pairs"], m["rss_before_kib"], m["rss_after_kib"], m["kib_per_conversation"]))
    for name, m in report["micro"].items():
        print("\n%s: %s" % (name, m.get("status")))
        if m.get("stdout"):
            lines = [l for l in m["stdout"].strip().splitlines() if not l.startswith("{")]
            print("  " + "\n  ".join(lines[-30:]))
    print("\ntargets:")
    for name, t in report["summary"]["targets"].items():
        verdict = {True: "MET", False: "MISSED", None: "n/a"}[t["met"]]
        value = t["value"]
        shown = "%.3f" % value if isinstance(value, float) else str(value)
        print("  %-36s %10s   target %-34s %s%s" % (name, shown, t["target"], verdict,
                                                      ("  (%s)" % t["note"]) if t.get("note") else ""))


def _order(name):
    group, _, config = name.partition("/")
    return ({"latency": 0, "t10": 1, "t100": 2, "store": 3}.get(group, 9),
            {"direct": 0, "relay": 1, "fwd": 2, "validate": 3, "off": 4, "on": 5}.get(config, 9))


def _fmt(value, fmt):
    return "-" if value is None else fmt % value


def print_profiles(servers):
    import pstats
    for name, server in servers.items():
        if server.profile_path and os.path.exists(server.profile_path):
            print("\n== cProfile of the %s daemon (%s), top 25 by own time" % (name, server.profile_path))
            pstats.Stats(server.profile_path).sort_stats("tottime").print_stats(25)


def machine_info():
    info = {"nproc": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            info["mem_total_kib"] = int(f.readline().split()[1])
    except OSError:
        pass
    versions = {}
    for dist in ("twisted", "autobahn", "txaio", "fastjsonschema", "websockets"):
        try:
            from importlib.metadata import version
            versions[dist] = version(dist)
        except Exception:
            versions[dist] = None
    info["packages"] = versions
    try:
        import autobahn.websocket as aw
        info["autobahn_nvx"] = bool(getattr(aw, "USES_NVX", False))
    except Exception:
        info["autobahn_nvx"] = None
    return info


if __name__ == "__main__":
    sys.exit(main())
