#!/usr/bin/env python3
"""Benchmark of one reconcile run, as the CronJob runs it, against a fake and a real API server.

    .venv/bin/python bench/run.py [--objects 1000] [--latency-ms 5] [--kinds 11] [--namespaces 10]
                                  [--concurrency 8] [--skip-kubectl] [--skip-controlplane] [--quick]

Scenarios, each `reconcile.py --repo file://...` started as a fresh process:
first run (creates everything), no-change run, a commit changing 10% of the
objects, a commit removing 10%. For each: wall seconds from process start to
exit, API requests by verb, peak RSS, and the time from process start to the
first API request. kubectl's `apply --server-side` of the same tree is timed for
the no-change case against the same server. See bench/README.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

from workload import Workload  # noqa: E402

VERBS = ("discovery", "get", "list", "create", "update", "patch", "delete")
SUMMARY = re.compile(r"summary commit=\S+ result=(?P<result>\S+) (?P<counts>(?:\w+=\d+ )+)seconds=")
STAGE = re.compile(r"stage (?P<name>\w+) done in (?P<seconds>[\d.]+)s")
AUDIT_POLICY = """apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: Metadata
"""


@dataclass
class Request:
    verb: str  # discovery, get, list, create, update, patch, delete
    time: float  # epoch seconds when the server received it
    agent: str


@dataclass
class Measurement:
    label: str
    seconds: float
    cpu: float  # user + system seconds of the process (and the git processes it waited for)
    maxrss_mb: float
    exit: int
    requests: list[Request]
    first_request: float | None  # seconds from process start to the first request the server saw
    result: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    stages: dict[str, float] = field(default_factory=dict)

    def verbs(self) -> dict[str, int]:
        return {**dict.fromkeys(VERBS, 0), **Counter(request.verb for request in self.requests)}


def verb_of(method: str, path: str) -> str:
    """The Kubernetes verb of a request, from its method and path (the apiserver's request-info rules)."""
    parts = [p for p in path.split("/") if p]
    if method != "GET":
        return {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(method, method.lower())
    # /api, /api/v1, /apis, /apis/GROUP, /apis/GROUP/VERSION (and /openapi, /version): discovery
    prefix = {"api": 2, "apis": 3}.get(parts[0] if parts else "")
    if prefix is None or len(parts) <= prefix:
        return "discovery"
    rest = parts[prefix:]
    if rest[:1] == ["namespaces"] and len(rest) >= 3 and rest[2] not in ("status", "finalize"):
        rest = rest[2:]
    return "list" if len(rest) == 1 else "get"


# --------------------------------------------------------------------------- servers under test

class FakeServer:
    """tests/fakekube in its own process (bench/fake_process.py), with the latency asked for."""

    name = "fake"

    def __init__(self, workdir: Path, latency_ms: float) -> None:
        self.kubeconfig = workdir / "fake-kubeconfig"
        self.latency_ms = latency_ms
        self.process = subprocess.Popen(
            [sys.executable, str(BENCH / "fake_process.py"), "--latency-ms", str(latency_ms),
             "--kubeconfig", str(self.kubeconfig)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
        lines = [self.process.stdout.readline().strip() for _ in range(2)]
        if not lines[0].startswith("listening on ") or not lines[1].startswith("control on "):
            raise RuntimeError(f"fake API server did not start: {lines}")
        self.url = lines[0].removeprefix("listening on ")
        self.control = lines[1].removeprefix("control on ")
        self.title = f"fake API server (tests/fakekube, own process), {latency_ms:g} ms per request"

    def drain(self, start: float, end: float) -> list[Request]:
        with urllib.request.urlopen(f"{self.control}/requests?clear=1", timeout=60) as answer:
            rows = json.load(answer)
        return [Request(verb_of(method, path), when, agent) for method, path, when, _status, agent in rows
                if start <= when <= end]

    def mark(self) -> None:
        self.drain(0, 0)  # forget what came before

    def stop(self) -> None:
        self.process.stdin.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class RealServer:
    """etcd + kube-apiserver from tests/controlplane; requests are read from its audit log."""

    name = "control plane"

    def __init__(self, workdir: Path, assets: Path) -> None:
        from tests.controlplane.fixture import ControlPlane

        policy = workdir / "audit-policy.yaml"
        policy.write_text(AUDIT_POLICY)
        self.audit = workdir / "audit.log"
        self.plane = ControlPlane(assets, extra_apiserver_args=[
            f"--audit-policy-file={policy}", f"--audit-log-path={self.audit}", "--audit-log-maxsize=0"])
        self.plane.start()
        for name in ("gitops",):
            status, body = self.plane.request("POST", "/api/v1/namespaces",
                                              {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
            if status not in (201, 409):
                raise RuntimeError(f"creating namespace {name}: HTTP {status} {body}")
        self.kubeconfig = self.plane.kubeconfig
        self.offset = 0
        self.title = (f"real control plane (etcd + kube-apiserver {self.plane.assets.name}, audit log at "
                      "Metadata level), no injected latency")

    def read_audit(self) -> Iterator[dict[str, Any]]:
        with open(self.audit, "rb") as handle:
            handle.seek(self.offset)
            data = handle.read()
        end = data.rfind(b"\n") + 1
        self.offset += end
        for line in data[:end].splitlines():
            yield json.loads(line)

    def drain(self, start: float, end: float) -> list[Request]:
        time.sleep(0.5)  # the ResponseComplete event is written just after the answer
        requests = []
        for event in self.read_audit():
            agent = event.get("userAgent", "")
            if agent.startswith("kube-apiserver"):
                continue  # the server's own loopback clients
            when = datetime.fromisoformat(event["requestReceivedTimestamp"]).timestamp()
            if not start <= when <= end:
                continue
            verb = event["verb"]
            if "objectRef" not in event:
                verb = "discovery" if verb == "get" else verb
            requests.append(Request(verb, when, agent))
        return requests

    def mark(self) -> None:
        time.sleep(0.5)
        for _ in self.read_audit():
            pass

    def stop(self) -> None:
        self.plane.stop()


# --------------------------------------------------------------------------- running and measuring

def measure(label: str, command: list[str], server: FakeServer | RealServer, log: Path, timeout: float,
            env: dict[str, str] | None = None) -> Measurement:
    """Runs `command` under bench/measure.py (exact peak RSS, start timestamp) and collects its requests."""
    server.mark()
    result_file = log.with_suffix(".json")
    with open(log, "w") as output:
        process = subprocess.Popen([sys.executable, "-S", str(BENCH / "measure.py"), str(result_file), "--",
                                    *command], stdout=output, stderr=subprocess.STDOUT, cwd=ROOT,
                                   env=env, start_new_session=True)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise RuntimeError(f"{label}: still running after {timeout:.0f}s; killed (log: {log})") from None
    result = json.loads(result_file.read_text())
    requests = server.drain(result["start"], result["start"] + result["seconds"] + 0.01)
    first = min((r.time for r in requests), default=None)
    measurement = Measurement(label, result["seconds"], result["user"] + result["system"], result["maxrss_kb"] / 1024,
                              result["exit"], requests,
                              None if first is None else first - result["start"])
    text = log.read_text(errors="replace")
    found = SUMMARY.search(text)
    if found:
        measurement.result = found["result"]
        measurement.counts = {k: int(v) for k, v in (pair.split("=") for pair in found["counts"].split())}
    measurement.stages = {m["name"]: float(m["seconds"]) for m in STAGE.finditer(text)}
    return measurement


def production_python() -> str:
    """A venv with requirements.txt alone, as the image has. The dev requirements would make
    `kubernetes` import kubernetes_validate and jsonschema: about 0.1 s more start-up."""
    requirements = (ROOT / "requirements.txt").read_bytes()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "gitops-cron"
    venv = cache / f"bench-venv-{hashlib.sha256(requirements).hexdigest()[:12]}"
    python, done = venv / "bin" / "python", venv / ".complete"
    if not done.exists():
        print(f"creating {venv} (requirements.txt only, as in the image)", flush=True)
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "-r", str(ROOT / "requirements.txt")], check=True)
        done.touch()
    return str(python)


def job_command(args: argparse.Namespace, workload: Workload, kubeconfig: Path, extra: list[str] = ()) -> list[str]:
    return [args.python, *extra, str(args.job_root / "reconcile.py"), "--repo", workload.url, "--kubeconfig",
            str(kubeconfig), "--concurrency", str(args.concurrency), "--max-prune", str(args.objects),
            "--timeout", str(args.job_timeout)]


def kubectl_command(tree: Path, kubeconfig: Path, cache: Path) -> list[str]:
    # --validate=false: the fake serves no OpenAPI document, which kubectl's client-side validation wants.
    return [shutil.which("kubectl") or "kubectl", "apply", "--server-side", "--force-conflicts", "--field-manager=kubectl-bench",
            "-R", "-f", str(tree), "--kubeconfig", str(kubeconfig), "--validate=false", "--cache-dir", str(cache)]


def run_tier(args: argparse.Namespace, server: FakeServer | RealServer, workdir: Path) -> dict[str, Measurement]:
    """The job's four scenarios against one server, with kubectl's no-change runs interleaved with the
    job's (so that load from elsewhere on the machine falls on both alike)."""
    tag = server.name.replace(" ", "-")
    workload = Workload(workdir / f"repo-{tag}", args.objects, args.kinds, args.namespaces)
    workload.create()
    tree = workdir / f"tree-{tag}"
    workload.export(tree)  # what kubectl applies: the first commit, which is what the no-change runs apply
    logs = workdir / f"logs-{tag}"
    logs.mkdir()
    results: dict[str, Measurement] = {}
    env = {**os.environ, "HOME": str(workdir)}  # no ~/.kube of the machine's, for kubectl
    cache = workdir / f"kubectl-cache-{tag}"

    def record(key: str, m: Measurement, log: Path, what: str) -> Measurement:
        results[key] = m
        print(f"  {m.label}: {m.seconds:.2f}s", flush=True)
        if m.exit != 0:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
            raise RuntimeError(f"{m.label}: {what} exited {m.exit}; last lines:\n{tail}")
        return m

    def job(key: str, label: str, *flags: str) -> Measurement:
        log = logs / f"{key}.log"
        m = measure(label, [*job_command(args, workload, server.kubeconfig), *flags], server, log,
                    args.job_timeout + 60)
        return record(key, m, log, "reconcile.py")

    def full(key: str, label: str) -> Measurement:
        # An interval that has always passed: every object is sent, as in the hourly full apply, and the
        # applied record is rewritten (interval 0 would drop it, and the next no-change run would send all).
        return job(key, label, "--full-apply-interval", "0.001")

    def kubectl(key: str, label: str, cache_dir: Path) -> Measurement:
        log = logs / f"{key}.log"
        m = measure(label, kubectl_command(tree, server.kubeconfig, cache_dir), server, log, args.kubectl_timeout,
                    env)
        return record(key, m, log, "kubectl")

    with_kubectl = not args.skip_kubectl and shutil.which("kubectl") is not None
    if with_kubectl and args.objects > args.kubectl_max_objects:
        print(f"  kubectl skipped: {args.objects} objects > --kubectl-max-objects {args.kubectl_max_objects}",
              flush=True)
        with_kubectl = False
    elif not args.skip_kubectl and not with_kubectl:
        print("  kubectl skipped: not on PATH", flush=True)

    print(f"[{server.name}] {args.objects} objects, {args.kinds} kinds + Namespace, {args.namespaces} namespaces",
          flush=True)
    job("first", "first run (creates all)")
    if with_kubectl:
        # kubectl becomes a co-owner of the same fields with the same values: a no-op for both from then on.
        # Its first apply writes every object (managedFields), so the job's next run sends every object again.
        kubectl("kubectl-first", "kubectl first apply (takes its fields)", cache)
        job("after-kubectl", "job after kubectl's first apply (all sent)")
    for i in range(1, args.repeat + 1):
        again = f", again ({i} of {args.repeat})" if i > 1 else ""
        suffix = f"-{i}" if i > 1 else ""
        job(f"nochange{suffix}", f"no-change run{again}")
        full(f"full{suffix}", f"no-change, full apply (every object sent){again}")
        if with_kubectl:
            kubectl(f"kubectl-warm{suffix}", f"kubectl no-change (discovery cache warm){again}", cache)
    if with_kubectl:
        kubectl("kubectl-cold", "kubectl no-change (discovery cache cold)", workdir / f"kubectl-cold-{tag}")
    if args.profile and isinstance(server, FakeServer):
        profile_no_change(args, workload, server)
    changed = workload.change(0.10)
    job("changed", f"{changed} objects changed (new commit)")
    removed = workload.remove(0.10)
    job("removed", f"{removed} objects removed (new commit)")
    return results


def profile_no_change(args: argparse.Namespace, workload: Workload, server: FakeServer) -> None:
    """One more no-change run, in-process under cProfile with every thread profiled (bench/profile_job.py)."""
    command = job_command(args, workload, server.kubeconfig)
    done = subprocess.run([sys.executable, str(BENCH / "profile_job.py"), "--top", "30", "--", *command[2:]],
                          capture_output=True, text=True, cwd=args.job_root, timeout=args.job_timeout + 60)
    print("\n  profile of a no-change run, all threads (bench/profile_job.py):")
    print("\n".join("    " + line for line in done.stdout.splitlines()), flush=True)


# --------------------------------------------------------------------------- report

def print_table(title: str, results: dict[str, Measurement], args: argparse.Namespace) -> None:
    print(f"\n=== {title}")
    print(f"=== {args.objects} objects ({args.namespaces} Namespaces + {args.objects - args.namespaces} in "
          f"{args.kinds} kinds), concurrency {args.concurrency}")
    head = (f"{'run':<44} {'exit':>4} {'wall s':>7} {'CPU s':>6} {'RSS MB':>7} {'1st req s':>9} {'requests':>8} "
            + " ".join(f"{v[:5]:>5}" for v in VERBS) + "  result")
    print(head)
    print("-" * len(head))
    for m in results.values():
        verbs = m.verbs()
        first = f"{m.first_request:.3f}" if m.first_request is not None else "-"
        outcome = (m.result + " " + " ".join(f"{k}={v}" for k, v in m.counts.items() if v)) if m.result else ""
        print(f"{m.label:<44} {m.exit:>4} {m.seconds:>7.2f} {m.cpu:>6.2f} {m.maxrss_mb:>7.1f} {first:>9} {len(m.requests):>8} "
              + " ".join(f"{verbs[v]:>5}" for v in VERBS) + f"  {outcome}")
    stage_rows = [m for m in results.values() if m.stages]
    if stage_rows:
        names = list(dict.fromkeys(name for m in stage_rows for name in m.stages))
        print("\njob stages (s): " + " / ".join(names))
        for m in stage_rows:
            print(f"  {m.label:<42} " + " ".join(f"{m.stages.get(n, 0):>6.2f}" for n in names))
    nochange = results.get("nochange")
    if nochange is None:
        return
    kinds = args.kinds + 1  # the Namespace kind too
    bound = args.objects + kinds * args.namespaces + 2 + 5
    print(f"\nrequests bound N + kinds*namespaces + discovery + 5 = {args.objects} + {kinds}*{args.namespaces} + 2 "
          f"+ 5 = {bound}")
    for key in ("nochange", "full"):
        if key in results:
            count = len(results[key].requests)
            print(f"  {results[key].label}: {count} requests: {'met' if count <= bound else 'MISSED'}")
    agents = sorted({r.agent.split(" ")[0] for r in nochange.requests})
    print(f"  user agents seen: {', '.join(agents)}")
    job_seconds = median(m.seconds for k, m in results.items() if k.startswith("nochange"))
    runs = sum(1 for k in results if k.startswith("nochange"))
    firsts = [m.first_request for k, m in results.items() if k.startswith("nochange") and m.first_request]
    if firsts:
        first = median(firsts)
        print(f"no-change process start to first API request, median of {len(firsts)}: {first:.3f}s "
              f"(target < 0.5s: {'met' if first < 0.5 else 'MISSED'})")
    full_seconds = median(m.seconds for k, m in results.items() if k.startswith("full"))
    print(f"no-change wall time, median of {runs}: {job_seconds:.2f}s; with every object sent (the run after "
          f"--full-apply-interval): {full_seconds:.2f}s")
    for key in ("kubectl-warm", "kubectl-cold"):
        if key in results:
            samples = [m.seconds for k, m in results.items() if k == key or k.startswith(key + "-")]
            kubectl = median(samples)
            print(f"{results[key].label}, median of {len(samples)}: {kubectl:.2f}s; job/kubectl = "
                  f"{job_seconds / kubectl:.3f}: the job is {kubectl / job_seconds:.2f}x as fast "
                  f"({kubectl / full_seconds:.2f}x in a full-apply run)")


def median(values: Any) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=None, help="objects in the repository, Namespaces included "
                        "(default 1000; 100 with --quick)")
    parser.add_argument("--latency-ms", type=float, default=5.0, help="latency the fake adds to every request")
    parser.add_argument("--kinds", type=int, default=11, help="namespaced kinds used, 1-11 (Namespace comes on top)")
    parser.add_argument("--namespaces", type=int, default=None, help="namespaces (default 10; 3 with --quick)")
    parser.add_argument("--concurrency", type=int, default=8, help="the job's --concurrency")
    parser.add_argument("--skip-kubectl", action="store_true")
    parser.add_argument("--skip-controlplane", action="store_true")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 100 objects, 3 namespaces, no control "
                        "plane")
    parser.add_argument("--profile", action="store_true", help="also profile a no-change run (fake tier, all "
                        "threads) and print the top functions")
    parser.add_argument("--kubectl-max-objects", type=int, default=10_000, help="skip kubectl above this many "
                        "objects")
    parser.add_argument("--kubectl-timeout", type=float, default=600.0, help="seconds one kubectl run may take")
    parser.add_argument("--job-timeout", type=float, default=600.0, help="the job's --timeout")
    parser.add_argument("--repeat", type=int, default=3, help="no-change runs of the job and of kubectl (the "
                        "median is compared)")
    parser.add_argument("--job-root", type=Path, default=ROOT, help="run reconcile.py from this copy of the "
                        "project (to compare a change against what it replaced)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, repos)")
    parser.add_argument("--python", default=None, help="interpreter that runs the job (default: a cached venv "
                        "with requirements.txt alone, as in the image)")
    args = parser.parse_args()
    args.python = args.python or production_python()
    args.objects = args.objects or (100 if args.quick else 1000)
    args.namespaces = args.namespaces or (3 if args.quick else 10)
    args.skip_controlplane = args.skip_controlplane or args.quick
    if not 1 <= args.kinds <= 11:
        parser.error("--kinds must be between 1 and 11")

    workdir = Path(tempfile.mkdtemp(prefix="gitops-cron-bench-"))
    # As the image's build does: the job's own modules are read compiled (__pycache__ is git-ignored).
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(args.job_root / "gitops_cron")], check=True)
    print(f"work directory {workdir}; python {sys.version.split()[0]}, {os.cpu_count()} cores, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    tables: list[tuple[str, dict[str, Measurement]]] = []
    try:
        fake = FakeServer(workdir, args.latency_ms)
        try:
            tables.append((fake.title, run_tier(args, fake, workdir)))
        finally:
            fake.stop()
        if args.skip_controlplane:
            print("real control plane tier skipped (--skip-controlplane)", flush=True)
        else:
            from tests.controlplane.fixture import find_assets

            assets = find_assets()
            if assets is None:
                print("real control plane tier skipped: no etcd/kube-apiserver binaries "
                      "(tests/controlplane/build.sh builds them)", flush=True)
            else:
                real = RealServer(workdir, assets)
                try:
                    tables.append((real.title, run_tier(args, real, workdir)))
                finally:
                    real.stop()
    finally:
        for title, results in tables:
            print_table(title, results, args)
        print(f"\nload average at the end (other work on this machine skews wall times): "
              f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        if args.keep:
            print(f"\nkept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
