"""A real etcd + kube-apiserver, started as local processes for tests.

This is the envtest approach: no kubelet, no controller-manager, no scheduler,
just the API server and its storage.  It answers the questions the fake API
server cannot answer by itself: what the real server does with server-side
apply, field ownership, validation errors, RBAC and CRDs.

Binaries come from ``KUBEBUILDER_ASSETS`` or from the cache that
``tests/controlplane/build.sh`` fills (built from the Go modules).

Use in tests::

    from tests.controlplane.fixture import control_plane  # noqa: F401  (in conftest.py)

    @pytest.mark.controlplane
    def test_x(control_plane: ControlPlane) -> None:
        api = kubernetes.config.new_client_from_config(config_file=str(control_plane.kubeconfig))

Limits that come from running no controllers (they are facts about this
tier, not bugs to work around in product code; checked against v1.37.2):

* Deleting a Namespace leaves it ``Terminating`` forever (``spec.finalizers:
  [kubernetes]`` is never removed: that is the namespace controller's job),
  its objects stay readable, and creating anything in it is refused with 403
  "unable to create new content in namespace ... because it is being
  terminated".  Use a fresh, uniquely named namespace per test instead.
* Nothing garbage-collects.  A Background (default) delete removes the owner
  at once but leaves its dependents; a Foreground or Orphan delete leaves the
  owner itself stuck with a deletionTimestamp and a ``foregroundDeletion`` /
  ``orphan`` finalizer.
* No ``default`` ServiceAccount appears in any namespace and no token Secrets
  are populated; get ServiceAccount tokens through the TokenRequest API
  (:meth:`ControlPlane.token_for_service_account`).  The ``ServiceAccount``
  admission plugin is disabled so Pods can be created without that account.
* Deployments never get ReplicaSets or Pods, Pods stay ``Pending``, status is
  never written: anything that waits for rollout or readiness waits forever.
* CRDs do become ``Established`` (the apiextensions server sets that
  condition itself, within tens of milliseconds), but the first request for
  the new resource may still 404 or stall about 2 s while its handler comes
  up; retry briefly on 404.
* The "kubernetes" Service endpoints are not reconciled
  (``--endpoint-reconciler-type=none``: the reconciler rejects 127.0.0.1).

The server listens on 127.0.0.1 only, with a throwaway CA, serving cert and
service-account keys made by the ``openssl`` CLI at start (the venv does not
ship ``cryptography`` and this does not need it).  The admin identity is a
static bearer token in group ``system:masters``; authorization is RBAC, so
ServiceAccount tokens see real 403s.
"""

from __future__ import annotations

import atexit
import base64
import ctypes
import json
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest
import yaml

log = logging.getLogger(__name__)

BUILD_SCRIPT = Path(__file__).resolve().with_name("build.sh")

_SKIP_REASON = "no etcd/kube-apiserver binaries: set KUBEBUILDER_ASSETS or run tests/controlplane/build.sh"


def _pinned_versions() -> tuple[str, str]:
    """Read the pins from build.sh so the cache path has one source of truth."""
    text = BUILD_SCRIPT.read_text(encoding="utf-8")
    found: dict[str, str] = {}
    for name in ("K8S_VERSION", "ETCD_VERSION"):
        match = re.search(rf"^{name}=(v[0-9][^\s]*)\s*$", text, re.MULTILINE)
        if match is None:
            raise RuntimeError(f"{BUILD_SCRIPT}: no {name}=vX.Y.Z line")
        found[name] = match.group(1)
    return found["K8S_VERSION"], found["ETCD_VERSION"]


K8S_VERSION, ETCD_VERSION = _pinned_versions()


def default_assets_dir() -> Path:
    """Where build.sh puts the binaries; must match its own computation."""
    root = os.environ.get("GITOPS_CRON_CACHE") or str(Path.home() / ".cache" / "gitops-cron")
    return Path(root) / "controlplane" / f"{K8S_VERSION}-{ETCD_VERSION}"


def find_assets() -> Path | None:
    """Locate a directory holding ``etcd`` and ``kube-apiserver``.

    An explicit ``KUBEBUILDER_ASSETS`` wins even if it is broken, so a wrong
    setting fails loudly in start() instead of silently using another build.
    """
    explicit = os.environ.get("KUBEBUILDER_ASSETS")
    if explicit:
        return Path(explicit)
    cached = default_assets_dir()
    if all(os.access(cached / name, os.X_OK) for name in ("etcd", "kube-apiserver")):
        return cached
    return None


class ControlPlaneError(RuntimeError):
    """The control plane did not come up (or misbehaved while starting)."""


def _free_ports(count: int) -> list[int]:
    """Ask the kernel for distinct free loopback ports.

    All sockets stay open until every port is chosen so the kernel cannot hand
    out the same one twice; another process may still grab one before our
    servers bind, which start() reports as a startup failure.
    """
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _openssl(*args: str, cwd: Path) -> None:
    result = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ControlPlaneError(f"openssl {args[0]} failed: {result.stderr.strip()}")


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGKILL it if the spawning thread dies.

    atexit does not run when Python is killed by a signal; this covers that.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return


_WORKDIR_PREFIX = "gitops-cron-controlplane-"


def _sweep_stale_workdirs() -> None:
    """Delete temp dirs left by runs whose Python was killed outright.

    A SIGKILLed run cannot clean up after itself (its servers still die, see
    _die_with_parent); its directory records the owner's pid so a later run
    can tell a dead owner from a live concurrent one.
    """
    for candidate in Path(tempfile.gettempdir()).glob(f"{_WORKDIR_PREFIX}*"):
        try:
            owner = int((candidate / "owner.pid").read_text(encoding="ascii").strip())
        except (OSError, ValueError):
            continue
        try:
            os.kill(owner, 0)
        except ProcessLookupError:
            log.info("removing %s left by dead pid %d", candidate, owner)
            shutil.rmtree(candidate, ignore_errors=True)
        except PermissionError:
            continue


def _tail(path: Path, lines: int = 40) -> str:
    try:
        with path.open("r", encoding="utf-8", errors="replace") as handle:
            return "".join(deque(handle, maxlen=lines))
    except OSError as exc:
        return f"<cannot read {path}: {exc}>"


class ControlPlane:
    """etcd + kube-apiserver on loopback, torn down without leftovers.

    Attributes valid after :meth:`start`: ``url`` (https://127.0.0.1:PORT),
    ``kubeconfig`` (Path of an admin kubeconfig), ``token`` (admin bearer
    token, group ``system:masters``), ``ca_file`` (Path of the CA bundle).
    """

    ADMIN_USER = "gitops-cron-test-admin"

    def __init__(
        self,
        assets: Path | None = None,
        *,
        start_timeout: float = 90.0,
        stop_timeout: float = 15.0,
        extra_apiserver_args: list[str] | None = None,
    ) -> None:
        resolved = assets if assets is not None else find_assets()
        if resolved is None:
            raise ControlPlaneError(_SKIP_REASON)
        self.assets = Path(resolved)
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.extra_apiserver_args = list(extra_apiserver_args or [])

        self.url = ""
        self.token = ""
        self.kubeconfig = Path()
        self.ca_file = Path()
        self.workdir: Path | None = None
        self.startup_seconds: float | None = None
        self._etcd: subprocess.Popen[bytes] | None = None
        self._apiserver: subprocess.Popen[bytes] | None = None
        self._ssl: ssl.SSLContext | None = None
        self._atexit_registered = False
        self._etcd_log = Path()
        self._apiserver_log = Path()

    def __repr__(self) -> str:
        # No token here: reprs end up in test logs.
        return f"ControlPlane(url={self.url!r}, assets={str(self.assets)!r})"

    # -- lifecycle ---------------------------------------------------------

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        if self._apiserver is not None:
            raise ControlPlaneError("already started")
        for name in ("etcd", "kube-apiserver"):
            if not os.access(self.assets / name, os.X_OK):
                raise ControlPlaneError(f"{self.assets / name} is missing or not executable")
        if shutil.which("openssl") is None:
            raise ControlPlaneError("the openssl CLI is needed to make throwaway certificates")

        began = time.monotonic()
        _sweep_stale_workdirs()
        self.workdir = Path(tempfile.mkdtemp(prefix=_WORKDIR_PREFIX))
        (self.workdir / "owner.pid").write_text(f"{os.getpid()}\n", encoding="ascii")
        atexit.register(self.stop)
        self._atexit_registered = True
        try:
            self._make_pki()
            client_port, peer_port, secure_port = _free_ports(3)
            self._start_etcd(client_port, peer_port)
            self._start_apiserver(client_port, secure_port)
            self._wait_ready(began)
            self._write_kubeconfig(self.token, self.kubeconfig, self.ADMIN_USER)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - began
        log.info("control plane ready at %s in %.1fs", self.url, self.startup_seconds)

    def stop(self) -> None:
        """Stop both servers (apiserver first) and delete every temp file.

        Safe to call twice and from atexit.
        """
        for attr in ("_apiserver", "_etcd"):
            proc: subprocess.Popen[bytes] | None = getattr(self, attr)
            if proc is not None:
                self._terminate(proc)
                setattr(self, attr, None)
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None
        if self._atexit_registered:
            atexit.unregister(self.stop)
            self._atexit_registered = False

    def _terminate(self, proc: subprocess.Popen[bytes]) -> None:
        # Each server leads its own process group (start_new_session), so the
        # group signal also reaches anything it forked.
        for sig, wait in ((signal.SIGTERM, self.stop_timeout), (signal.SIGKILL, 10.0)):
            if proc.poll() is not None:
                break
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                log.warning("pid %d ignored %s", proc.pid, sig.name)
        # Reap stragglers in the group even when the leader already exited.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        proc.wait()

    def _spawn(self, argv: list[str], logfile: Path) -> subprocess.Popen[bytes]:
        assert self.workdir is not None
        # PDEATHSIG follows the spawning thread, not the process: only arm it
        # from the main thread, where thread death means process death.
        on_main = threading.current_thread() is threading.main_thread()
        with logfile.open("wb") as out:
            return subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                start_new_session=True,
                preexec_fn=_die_with_parent if on_main else None,
            )

    # -- setup steps -------------------------------------------------------

    def _make_pki(self) -> None:
        assert self.workdir is not None
        pki = self.workdir / "pki"
        pki.mkdir(mode=0o700)
        ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
        _openssl(
            "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
            "-subj", "/CN=gitops-cron-test-ca",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            cwd=pki,
        )  # fmt: skip
        (pki / "server.ext").write_text(
            "basicConstraints=critical,CA:FALSE\n"
            "keyUsage=critical,digitalSignature,keyEncipherment\n"
            "extendedKeyUsage=serverAuth\n"
            "subjectKeyIdentifier=hash\n"
            "authorityKeyIdentifier=keyid\n"
            "subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,"
            "DNS:kubernetes.default,DNS:kubernetes.default.svc,"
            "DNS:kubernetes.default.svc.cluster.local\n",
            encoding="utf-8",
        )
        _openssl(
            "req", "-new", *ec, "-keyout", "server.key", "-out", "server.csr",
            "-subj", "/CN=kube-apiserver",
            cwd=pki,
        )  # fmt: skip
        _openssl(
            "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", "server.ext", "-out", "server.crt",
            cwd=pki,
        )  # fmt: skip
        _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "sa.key", cwd=pki)
        _openssl("pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=pki)

        self.token = secrets.token_urlsafe(32)
        # CSV: token,user,uid,"group1,group2"
        (pki / "tokens.csv").write_text(
            f'{self.token},{self.ADMIN_USER},{self.ADMIN_USER},"system:masters"\n', encoding="utf-8"
        )
        self.ca_file = pki / "ca.crt"
        self._ssl = ssl.create_default_context(cafile=str(self.ca_file))

    def _start_etcd(self, client_port: int, peer_port: int) -> None:
        assert self.workdir is not None
        client = f"http://127.0.0.1:{client_port}"
        peer = f"http://127.0.0.1:{peer_port}"
        argv = [
            str(self.assets / "etcd"),
            "--name=default",
            f"--data-dir={self.workdir / 'etcd'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=default={peer}",
            "--initial-cluster-state=new",
            # Test data is thrown away; fsync only costs time.
            "--unsafe-no-fsync",
            "--log-level=warn",
        ]
        self._etcd_log = self.workdir / "etcd.log"
        self._etcd = self._spawn(argv, self._etcd_log)
        self._etcd_url = client
        deadline = time.monotonic() + min(self.start_timeout, 30.0)
        while True:
            if self._etcd.poll() is not None:
                raise ControlPlaneError(
                    f"etcd exited with {self._etcd.returncode}; last log lines:\n{_tail(self._etcd_log)}"
                )
            try:
                with urllib.request.urlopen(f"{client}/health", timeout=2) as resp:
                    if json.load(resp).get("health") == "true":
                        return
            except (urllib.error.URLError, OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise ControlPlaneError(f"etcd not healthy at {client}; last log lines:\n{_tail(self._etcd_log)}")
            time.sleep(0.1)

    def _start_apiserver(self, etcd_port: int, secure_port: int) -> None:
        assert self.workdir is not None
        pki = self.workdir / "pki"
        argv = [
            str(self.assets / "kube-apiserver"),
            f"--etcd-servers=http://127.0.0.1:{etcd_port}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={secure_port}",
            f"--cert-dir={pki}",
            f"--tls-cert-file={pki / 'server.crt'}",
            f"--tls-private-key-file={pki / 'server.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            f"--token-auth-file={pki / 'tokens.csv'}",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            "--authorization-mode=RBAC",
            "--service-cluster-ip-range=10.0.0.0/24",
            # The lease reconciler publishes the advertise address in the
            # "kubernetes" Endpoints and refuses a loopback one.
            "--endpoint-reconciler-type=none",
            "--allow-privileged=true",
            # No controller-manager creates "default" ServiceAccounts, and this
            # plugin would reject every Pod that lacks one.
            "--disable-admission-plugins=ServiceAccount",
            "--profiling=false",
            "--v=1",
            *self.extra_apiserver_args,
        ]
        self._apiserver_log = self.workdir / "kube-apiserver.log"
        self._apiserver = self._spawn(argv, self._apiserver_log)
        self.url = f"https://127.0.0.1:{secure_port}"
        self.kubeconfig = self.workdir / "kubeconfig"

    def _wait_ready(self, began: float) -> None:
        assert self._apiserver is not None
        deadline = began + self.start_timeout
        last = "no answer yet"
        while True:
            if self._apiserver.poll() is not None:
                raise ControlPlaneError(
                    f"kube-apiserver exited with {self._apiserver.returncode}; "
                    f"last log lines:\n{_tail(self._apiserver_log)}"
                )
            try:
                status, body = self._raw("GET", "/readyz", timeout=2.0)
                if status == 200:
                    return
                last = f"HTTP {status}: {body[-500:].decode(errors='replace')}"
            except (urllib.error.URLError, OSError) as exc:
                last = str(exc)
            if time.monotonic() > deadline:
                raise ControlPlaneError(
                    f"kube-apiserver not ready at {self.url}/readyz after {self.start_timeout:.0f}s "
                    f"({last}); last log lines:\n{_tail(self._apiserver_log)}"
                )
            time.sleep(0.2)

    def _write_kubeconfig(self, token: str, path: Path, user: str) -> None:
        ca_data = base64.b64encode(self.ca_file.read_bytes()).decode("ascii")
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": "controlplane", "cluster": {"server": self.url, "certificate-authority-data": ca_data}}
            ],
            "users": [{"name": user, "user": {"token": token}}],
            "contexts": [{"name": user, "context": {"cluster": "controlplane", "user": user, "namespace": "default"}}],
            "current-context": user,
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        # Holds a bearer token: owner-only from the first byte.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            yaml.safe_dump(config, handle, sort_keys=False)

    # -- HTTP helpers ------------------------------------------------------

    def _raw(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        *,
        token: str | None = None,
        content_type: str = "application/json",
        timeout: float = 30.0,
    ) -> tuple[int, bytes]:
        if not self.url or self._ssl is None:
            raise ControlPlaneError("not started")
        request = urllib.request.Request(f"{self.url}{path}", data=body, method=method)
        request.add_header("Authorization", f"Bearer {token or self.token}")
        request.add_header("Accept", "application/json")
        if body is not None:
            request.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(request, context=self._ssl, timeout=timeout) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = None,
        content_type: str = "application/json",
    ) -> tuple[int, dict[str, Any]]:
        """Send one API call and return (HTTP status, decoded JSON body).

        Errors come back as their Status object rather than an exception, so
        tests can assert on the exact ``reason``/``details`` the real server
        sends.  Runs as the admin unless ``token`` is given.
        """
        data: bytes | None
        if body is None:
            data = None
        elif isinstance(body, (bytes, str)):
            data = body.encode() if isinstance(body, str) else body
        else:
            data = json.dumps(body).encode()
        status, raw = self._raw(method, path, data, token=token, content_type=content_type)
        try:
            decoded = json.loads(raw) if raw else {}
        except ValueError:
            decoded = {"raw": raw.decode(errors="replace")}
        return status, decoded if isinstance(decoded, dict) else {"items": decoded}

    # -- identities --------------------------------------------------------

    def token_for_service_account(
        self,
        namespace: str,
        name: str,
        *,
        create: bool = True,
        expiration_seconds: int = 3600,
    ) -> str:
        """Mint a token for a ServiceAccount through the TokenRequest API.

        There is no token controller here, so this is the only way to act as a
        ServiceAccount.  ``create`` makes the ServiceAccount (not the
        namespace) first when it is missing.
        """
        base = f"/api/v1/namespaces/{namespace}/serviceaccounts"
        if create:
            status, body = self.request(
                "POST", base, {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}}
            )
            if status not in (201, 409):
                raise ControlPlaneError(f"creating ServiceAccount {namespace}/{name}: HTTP {status}: {body}")
        status, body = self.request(
            "POST",
            f"{base}/{name}/token",
            {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"expirationSeconds": expiration_seconds},
            },
        )
        if status != 201:
            raise ControlPlaneError(f"TokenRequest for {namespace}/{name}: HTTP {status}: {body}")
        token = body.get("status", {}).get("token")
        if not isinstance(token, str) or not token:
            raise ControlPlaneError(f"TokenRequest for {namespace}/{name} returned no token")
        return token

    def kubeconfig_for_token(self, token: str, path: Path | str, user: str = "token-user") -> Path:
        """Write a kubeconfig that talks to this server as ``token``'s owner."""
        target = Path(path)
        self._write_kubeconfig(token, target, user)
        return target


# -- pytest ------------------------------------------------------------------

# One server per process even when the fixture function is registered twice
# (e.g. imported by tests/conftest.py and by a test module): pytest keeps one
# cache per registration, so the sharing has to live here.
_shared: ControlPlane | None = None
_shared_users = 0
_shared_lock = threading.Lock()


def _acquire_shared(assets: Path) -> ControlPlane:
    global _shared, _shared_users
    with _shared_lock:
        if _shared is None:
            plane = ControlPlane(assets)
            plane.start()
            _shared = plane
        _shared_users += 1
        return _shared


def _release_shared() -> None:
    global _shared, _shared_users
    with _shared_lock:
        _shared_users -= 1
        if _shared_users <= 0 and _shared is not None:
            _shared.stop()
            _shared = None
            _shared_users = 0


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    """A started ControlPlane for the whole session, or a skip without binaries."""
    assets = find_assets()
    if assets is None:
        pytest.skip(_SKIP_REASON)
    plane = _acquire_shared(assets)
    try:
        yield plane
    finally:
        _release_shared()
