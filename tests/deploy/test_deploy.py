#!/usr/bin/env python3
"""deploy/: the install rules, the systemd unit, the Docker image recipe and
the Kubernetes manifests, checked without a Docker engine or a cluster.

- `cmake --install` into a DESTDIR: binary, unit, example config; the
  installed binary starts with the installed config the way the unit and the
  container start it (ALIGND_* variables, --config), answers /ready and
  exits 0 on SIGTERM.
- `systemd-analyze verify` on the installed unit (SKIPPED loudly without it).
- deploy/Dockerfile: two debian:12-slim stages, a non-root USER, HEALTHCHECK
  on /ready, VOLUME, EXPOSE 8080, 0.0.0.0; the runtime packages cover every
  library the binary links (DT_NEEDED); hadolint when installed.
- deploy/docker-compose.yml and deploy/k8s/*.yaml (PyYAML; SKIPPED loudly
  without it): probes, security context, volumes, selectors, the store
  (Compose: the postgres service and its credentials; Kubernetes: SQLite,
  or PostgreSQL through an optional Secret).
Usage: test_deploy.py --binary BUILD/alignd --build-dir BUILD
"""
import argparse
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
DEPLOY = os.path.join(ROOT, "deploy")
ARGS = None


def skip_loudly(tc, why):
    print(f"\n*** SKIPPED: {why} ***", file=sys.stderr)
    tc.skipTest(why)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_status(port, path):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        c.request("GET", path)
        return c.getresponse().status
    finally:
        c.close()


def cache_value(build, key):
    with open(os.path.join(build, "CMakeCache.txt")) as f:
        for line in f:
            m = re.match(rf"{key}:\w+=(.*)", line.strip())
            if m:
                return m.group(1)
    return None


def load_yaml_all(path):
    import yaml
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


class Install(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dest = tempfile.mkdtemp(prefix="alignd_destdir_")
        env = dict(os.environ, DESTDIR=cls.dest)
        r = subprocess.run(["cmake", "--install", ARGS.build_dir], env=env,
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr
        prefix = cache_value(ARGS.build_dir, "CMAKE_INSTALL_PREFIX") or "/usr/local"
        etc = "/etc" if prefix == "/usr" else prefix + "/etc"
        cls.bin = cls.dest + prefix + "/bin/alignd"
        cls.ini = cls.dest + etc + "/alignd/alignd.ini"
        cls.unit = cls.dest + prefix + "/lib/systemd/system/alignd.service"
        cls.prefix, cls.etc = prefix, etc

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dest, ignore_errors=True)

    def test_layout(self):
        self.assertTrue(os.access(self.bin, os.X_OK), self.bin)
        with open(self.ini) as f, open(os.path.join(ROOT, "config", "alignd.ini")) as g:
            self.assertEqual(f.read(), g.read())
        with open(self.unit) as f:
            unit = f.read()
        # the unit names the installed paths of this prefix
        self.assertIn(f"ExecStart={self.prefix}/bin/alignd --config {self.etc}/alignd/alignd.ini",
                      unit)
        # the pack is installed, its generators (models/gen) are not
        models = [n for n in os.listdir(os.path.join(ROOT, "models")) if n != "gen"] \
            if os.path.isdir(os.path.join(ROOT, "models")) else []
        shared = os.path.join(self.dest + self.prefix, "share", "alignd", "models")
        for n in models:
            self.assertTrue(os.path.exists(os.path.join(shared, n)), n)
        self.assertFalse(os.path.exists(os.path.join(shared, "gen")))
        if os.path.exists(os.path.join(shared, "pack.ini")):
            # the installed pack names its models in its own folder
            r = subprocess.run([self.bin, f"--server.model_pack={shared}/pack.ini",
                                "--print-config"], capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn(f"path = {shared}/story-lm.gguf", r.stdout)
            self.assertIn(f"path = {shared}/shapes-clip", r.stdout)

    def test_installed_binary_runs_like_the_container(self):
        # the runtime stage's start: installed binary and config, ALIGND_* env,
        # state in a working directory of its own, SIGTERM exits 0
        state = tempfile.mkdtemp(prefix="alignd_state_")
        port = free_port()
        env = dict(os.environ, ALIGND_SERVER_HOST="0.0.0.0", ALIGND_SERVER_PORT=str(port),
                   ALIGND_STORE_PATH=os.path.join(state, "alignd.db"),
                   ALIGND_TRAINING_DIR=os.path.join(state, "training"))
        env.pop("NOTIFY_SOCKET", None)
        log = open(os.path.join(state, "stderr.log"), "w+")
        p = subprocess.Popen([self.bin, "--config", self.ini], cwd=state, env=env,
                             stdout=subprocess.DEVNULL, stderr=log)
        try:
            deadline, st = time.time() + 20, None
            while time.time() < deadline and st != 200:
                if p.poll() is not None:
                    log.seek(0)
                    self.fail(f"alignd exited early with {p.returncode}: {log.read()[-3000:]}")
                try:
                    st = get_status(port, "/ready")
                except OSError:
                    time.sleep(0.05)
            self.assertEqual(st, 200)
            self.assertEqual(get_status(port, "/health"), 200)
            p.send_signal(signal.SIGTERM)
            self.assertEqual(p.wait(20), 0)
            self.assertTrue(os.path.exists(os.path.join(state, "alignd.db")))
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            log.seek(0)
            out = log.read()
            log.close()
            shutil.rmtree(state, ignore_errors=True)
        self.assertIn("0.0.0.0", out)

    def test_systemd_analyze_verify(self):
        sa = shutil.which("systemd-analyze")
        if not sa:
            skip_loudly(self, "systemd-analyze is not installed (apt-get install systemd)")
        # verify checks that ExecStart exists: point it at the DESTDIR copy
        with open(self.unit) as f:
            unit = f.read()
        unit = unit.replace(f"{self.prefix}/bin/alignd", self.bin).replace(
            f"{self.etc}/alignd/alignd.ini", self.ini)
        d = tempfile.mkdtemp(prefix="alignd_unit_")
        path = os.path.join(d, "alignd.service")
        with open(path, "w") as f:
            f.write(unit)
        r = subprocess.run([sa, "verify", path], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertNotIn("alignd.service:", r.stderr)  # no warnings about our unit
        r = subprocess.run([sa, "security", "--offline=yes", path], capture_output=True, text=True)
        if r.returncode == 0 or "Overall exposure" in r.stdout:
            m = re.search(r"Overall exposure level for alignd.service: ([0-9.]+)", r.stdout)
            self.assertTrue(m, r.stdout[-2000:])
            self.assertLessEqual(float(m.group(1)), 2.5, r.stdout[-3000:])
        shutil.rmtree(d, ignore_errors=True)

    def test_unit_settings(self):
        with open(os.path.join(DEPLOY, "alignd.service")) as f:
            lines = [l.strip() for l in f if "=" in l and not l.lstrip().startswith("#")]
        kv = {}
        for l in lines:
            k, v = l.split("=", 1)
            kv.setdefault(k, []).append(v)
        want = {"Type": "notify", "ExecStart": "/usr/bin/alignd --config /etc/alignd/alignd.ini",
                "DynamicUser": "yes", "StateDirectory": "alignd", "WatchdogSec": "30",
                "ExecReload": "/bin/kill -HUP $MAINPID", "Restart": "on-failure",
                "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
                "PrivateTmp": "yes", "PrivateDevices": "yes", "MemoryDenyWriteExecute": "yes",
                "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6", "CapabilityBoundingSet": "",
                "LockPersonality": "yes", "RestrictRealtime": "yes",
                "SystemCallArchitectures": "native", "ProtectKernelTunables": "yes",
                "WorkingDirectory": "/var/lib/alignd"}
        for k, v in want.items():
            self.assertEqual(kv.get(k), [v], k)


class Dockerfile(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with open(os.path.join(DEPLOY, "Dockerfile")) as f:
            text = f.read()
        text = re.sub(r"\\\n", " ", text)  # join continuation lines
        cls.instr = []  # (stage index, INSTRUCTION, args)
        stage = -1
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            op, _, rest = line.partition(" ")
            op = op.upper()
            if op == "FROM":
                stage += 1
            cls.instr.append((stage, op, rest.strip()))
        cls.n_stages = stage + 1

    def of(self, op, stage=None):
        return [a for s, o, a in self.instr if o == op and (stage is None or s == stage)]

    def test_stages(self):
        froms = self.of("FROM")
        self.assertEqual(froms, ["debian:12-slim AS build", "debian:12-slim AS runtime"])
        last = self.n_stages - 1
        runs = " ".join(self.of("RUN", 0))
        self.assertIn("deploy/install-deps.sh", runs)
        self.assertIn("-DCMAKE_BUILD_TYPE=Release", runs)
        self.assertIn("cmake --install", runs)
        copies = self.of("COPY", last)
        self.assertTrue(all(c.startswith("--from=build") for c in copies), copies)
        # the default model pack, where the installed binary looks for it
        self.assertIn("--from=build /out/usr/share/alignd /usr/share/alignd", copies)
        # the runtime stage builds nothing
        self.assertNotIn("-dev", " ".join(self.of("RUN", last)))
        self.assertNotIn("install-deps", " ".join(self.of("RUN", last)))

    def test_runtime_settings(self):
        last = self.n_stages - 1
        users = self.of("USER", last)
        self.assertTrue(users, "no USER in the runtime stage")
        self.assertNotIn(users[-1].split(":")[0], ("root", "0"))
        hc = self.of("HEALTHCHECK", last)
        self.assertEqual(len(hc), 1)
        self.assertIn("/ready", hc[0])
        self.assertIn("curl", hc[0])
        self.assertIn("curl", " ".join(self.of("RUN", last)))
        self.assertEqual(self.of("EXPOSE", last), ["8080"])
        self.assertEqual(self.of("VOLUME", last), ["/var/lib/alignd"])
        env = " ".join(self.of("ENV", last))
        self.assertIn("ALIGND_SERVER_HOST=0.0.0.0", env)
        self.assertIn("ALIGND_STORE_PATH=/var/lib/alignd/", env)
        ep = self.of("ENTRYPOINT", last)
        self.assertEqual(ep, ['["/usr/bin/alignd", "--config", "/etc/alignd/alignd.ini"]'])

    def test_runtime_packages_cover_the_binary(self):
        # every library the binary links comes from a package the runtime
        # stage installs (or from debian:12-slim itself)
        readelf = shutil.which("readelf")
        if not readelf or not shutil.which("dpkg"):
            skip_loudly(self, "readelf or dpkg missing")
        r = subprocess.run([readelf, "-d", ARGS.binary], capture_output=True, text=True)
        needed = re.findall(r"\(NEEDED\).*\[(.+?)\]", r.stdout)
        self.assertTrue(needed)
        run = " ".join(self.of("RUN", self.n_stages - 1))
        base = {"libc6", "libgcc-s1"}  # in debian:12-slim
        if any("asan" in n or "ubsan" in n for n in needed):
            skip_loudly(self, "sanitizer build: its runtime libraries are not the image's")
        for lib in needed:
            path = None
            for d in ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib", "/usr/lib",
                      "/lib/aarch64-linux-gnu", "/usr/lib/aarch64-linux-gnu"):
                if os.path.exists(os.path.join(d, lib)):
                    path = os.path.realpath(os.path.join(d, lib))
                    break
            self.assertIsNotNone(path, lib)
            q = subprocess.run(["dpkg", "-S", path], capture_output=True, text=True)
            if q.returncode != 0:
                q = subprocess.run(["dpkg", "-S", path.replace("/usr/lib/", "/lib/", 1)],
                                   capture_output=True, text=True)
            pkg = q.stdout.split(":")[0].strip()
            self.assertTrue(pkg, f"{lib}: no package owns {path}")
            # libopenblas0-pthread ships libopenblas.so.0 through alternatives
            if pkg in base or re.search(rf"\b{re.escape(pkg)}\b", run):
                continue
            self.fail(f"{lib} comes from {pkg}, which the runtime stage does not install")

    def test_hadolint(self):
        h = shutil.which("hadolint")
        if not h:
            skip_loudly(self, "hadolint is not installed (not in Debian 12 or npm)")
        r = subprocess.run([h, os.path.join(DEPLOY, "Dockerfile")], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)


class Manifests(unittest.TestCase):
    def setUp(self):
        try:
            import yaml  # noqa: F401
        except ImportError:
            skip_loudly(self, "PyYAML missing (apt-get install python3-yaml)")

    def test_compose(self):
        (c,) = load_yaml_all(os.path.join(DEPLOY, "docker-compose.yml"))
        a = c["services"]["alignd"]
        self.assertEqual(a["build"]["dockerfile"], "deploy/Dockerfile")
        self.assertIn("8080:8080", a["ports"])
        self.assertEqual(a["environment"]["ALIGND_SERVER_HOST"], "0.0.0.0")
        self.assertTrue(a["read_only"])
        self.assertEqual(a["cap_drop"], ["ALL"])
        # the adapter and reward-model folders on the alignd-data volume
        self.assertIn("alignd-data:/var/lib/alignd", a["volumes"])
        self.assertTrue(a["environment"]["ALIGND_TRAINING_DIR"].startswith("/var/lib/alignd/"))
        # the store is the postgres service, with its credentials, once healthy
        pg = c["services"]["postgres"]
        self.assertEqual(pg["image"], "postgres:15")
        self.assertNotIn("profiles", pg)
        self.assertIn("pg_isready", " ".join(pg["healthcheck"]["test"]))
        self.assertEqual(a["depends_on"], {"postgres": {"condition": "service_healthy"}})
        self.assertNotIn("ALIGND_STORE_PATH", a["environment"])
        m = re.fullmatch(r"postgresql://([^:@/]+):([^@/]+)@([^:/]+):(\d+)/([^/?]+)",
                         a["environment"]["ALIGND_STORE_URL"])
        self.assertTrue(m, a["environment"]["ALIGND_STORE_URL"])
        pe = pg["environment"]
        self.assertEqual(m.groups(), (pe["POSTGRES_USER"], pe["POSTGRES_PASSWORD"], "postgres",
                                      "5432", pe["POSTGRES_DB"]))
        self.assertIn("postgres-data:/var/lib/postgresql/data", pg["volumes"])
        self.assertEqual(set(c["volumes"]), {"alignd-data", "postgres-data"})

    def test_k8s(self):
        docs = []
        k8s = os.path.join(DEPLOY, "k8s")
        for n in sorted(os.listdir(k8s)):
            if n.endswith(".yaml"):
                docs += load_yaml_all(os.path.join(k8s, n))
        by_kind = {d["kind"]: d for d in docs}
        self.assertEqual(set(by_kind), {"Deployment", "Service", "PersistentVolumeClaim",
                                        "PodDisruptionBudget"})
        for d in docs:
            self.assertIn("apiVersion", d)
            self.assertTrue(d["metadata"]["name"])
        dep = by_kind["Deployment"]
        self.assertEqual(dep["apiVersion"], "apps/v1")
        labels = dep["spec"]["template"]["metadata"]["labels"]
        sel = dep["spec"]["selector"]["matchLabels"]
        self.assertTrue(sel.items() <= labels.items())
        pod = dep["spec"]["template"]["spec"]
        self.assertTrue(pod["securityContext"]["runAsNonRoot"])
        (ctr,) = pod["containers"]
        self.assertEqual(ctr["readinessProbe"]["httpGet"]["path"], "/ready")
        self.assertEqual(ctr["livenessProbe"]["httpGet"]["path"], "/health")
        self.assertIn("requests", ctr["resources"])
        self.assertIn("limits", ctr["resources"])
        sc = ctr["securityContext"]
        self.assertTrue(sc["readOnlyRootFilesystem"])
        self.assertFalse(sc["allowPrivilegeEscalation"])
        self.assertEqual(sc["capabilities"]["drop"], ["ALL"])
        env = {e["name"]: e.get("value") for e in ctr["env"]}
        self.assertEqual(env["ALIGND_SERVER_HOST"], "0.0.0.0")
        port = int(env["ALIGND_SERVER_PORT"])
        (cport,) = ctr["ports"]
        self.assertEqual(cport["containerPort"], port)
        # every probe and the Service name the container's port
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            self.assertIn(ctr[probe]["httpGet"]["port"], (cport["name"], port))
        # state and /tmp are writable volumes; the state one is the PVC
        vols = {v["name"]: v for v in pod["volumes"]}
        mounts = {m["mountPath"]: m["name"] for m in ctr["volumeMounts"]}
        self.assertIn("/var/lib/alignd", mounts)
        self.assertIn("/tmp", mounts)
        self.assertIn("emptyDir", vols[mounts["/tmp"]])
        claim = vols[mounts["/var/lib/alignd"]]["persistentVolumeClaim"]["claimName"]
        self.assertEqual(claim, by_kind["PersistentVolumeClaim"]["metadata"]["name"])
        self.assertTrue(env["ALIGND_STORE_PATH"].startswith("/var/lib/alignd/"))
        self.assertTrue(env["ALIGND_TRAINING_DIR"].startswith("/var/lib/alignd/"))
        # the PostgreSQL store's URL comes from a Secret; optional, so that
        # without it the single replica below runs on the SQLite file
        (url,) = [e for e in ctr["env"] if e["name"] == "ALIGND_STORE_URL"]
        self.assertNotIn("value", url)
        ref = url["valueFrom"]["secretKeyRef"]
        self.assertTrue(ref["name"] and ref["key"])
        self.assertIs(ref.get("optional"), True)
        # one writer of the SQLite file: the old pod stops before the new starts
        self.assertEqual(dep["spec"]["strategy"]["type"], "Recreate")
        self.assertEqual(dep["spec"]["replicas"], 1)
        self.assertIn("ReadWriteOnce", by_kind["PersistentVolumeClaim"]["spec"]["accessModes"])
        svc = by_kind["Service"]
        self.assertEqual(svc["spec"]["selector"], sel)
        self.assertIn(svc["spec"]["ports"][0]["targetPort"], (cport["name"], port))
        pdb = by_kind["PodDisruptionBudget"]
        self.assertEqual(pdb["apiVersion"], "policy/v1")
        self.assertEqual(pdb["spec"]["selector"]["matchLabels"], sel)
        # the image's user (deploy/Dockerfile) matches the pod's runAsUser
        with open(os.path.join(DEPLOY, "Dockerfile")) as f:
            self.assertIn(f"--uid {pod['securityContext']['runAsUser']} ", f.read())


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--build-dir", required=True)
    ARGS, rest = ap.parse_known_args()
    ARGS.binary = os.path.abspath(ARGS.binary)
    ARGS.build_dir = os.path.abspath(ARGS.build_dir)
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)
