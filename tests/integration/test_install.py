"""make install: `cmake --install` of this build tree into a temporary
DESTDIR (prefix /usr/local, as `make install`), then the tree it leaves: the
three programs in /usr/local/bin, broker.conf and edge.conf in /etc/herald
(equal to conf/, with their .default beside them), the two systemd units.
A reinstall keeps an edited conf and replaces an unedited one; a conf put
there by hand is kept. The units are checked for their structure (sections,
ExecStart naming the installed program and conf, ExecReload, Restart,
LimitNOFILE, a stop timeout longer than shutdown-timeout) and, when
systemd-analyze is installed, by `systemd-analyze verify` (skipped with the
reason otherwise). The installed programs start from the installed conf as
the units' ExecStart says (ports moved to free ones), link, and exit 0 on
SIGTERM. `make -n install` passes PREFIX and DESTDIR to cmake --install."""
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
from harness import BUILD, SOURCE, Process, free_port

PREFIX = "/usr/local"
PROGRAMS = ("herald-broker", "herald-edge", "herald")
CONFS = ("broker.conf", "edge.conf")
UNITS = ("herald-broker.service", "herald-edge.service")
UNIT_DIR = PREFIX + "/lib/systemd/system"


def read(path):
    with open(path, "rb") as f:
        return f.read()


def parse_unit(text):
    """A unit file as {section: {key: [values]}} (keys may repeat)."""
    sections, cur = {}, None
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        m = re.fullmatch(r"\[([A-Za-z]+)\]", line)
        if m:
            cur = sections.setdefault(m.group(1), {})
            continue
        if cur is None or "=" not in line:
            raise AssertionError("line %d is neither a section nor key=value: %r" % (n, line))
        key, value = line.split("=", 1)
        cur.setdefault(key.strip(), []).append(value.strip())
    return sections


def seconds(text):
    m = re.fullmatch(r"(\d+)(ms|s|min)?", text)
    if not m:
        raise AssertionError("not a time: %r" % text)
    return int(m.group(1)) * {"ms": 0.001, None: 1, "s": 1, "min": 60}[m.group(2)]


class Install(unittest.TestCase):
    def setUp(self):
        self.dest = tempfile.mkdtemp(prefix="herald-destdir-")

    def tearDown(self):
        shutil.rmtree(self.dest, ignore_errors=True)

    def install(self):
        env = dict(os.environ, DESTDIR=self.dest)
        p = subprocess.run(["cmake", "--install", BUILD, "--prefix", PREFIX], env=env,
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        return p.stdout

    def path(self, *parts):
        return os.path.join(self.dest, *(p.lstrip("/") for p in parts))

    def conf(self, name):
        return self.path("/etc/herald", name)

    def test_tree(self):
        self.install()
        found = set()
        for root, _, files in os.walk(self.dest):
            for f in files:
                found.add("/" + os.path.relpath(os.path.join(root, f), self.dest))
        want = {PREFIX + "/bin/" + p for p in PROGRAMS}
        want |= {"/etc/herald/" + c for c in CONFS}
        want |= {"/etc/herald/" + c + ".default" for c in CONFS}
        want |= {UNIT_DIR + "/" + u for u in UNITS}
        self.assertEqual(found, want)
        for p in PROGRAMS:
            mode = os.stat(self.path(PREFIX, "bin", p)).st_mode
            self.assertTrue(mode & stat.S_IXOTH, "%s not executable: %o" % (p, mode))
        for c in CONFS:
            src = read(os.path.join(SOURCE, "conf", c))
            self.assertEqual(read(self.conf(c)), src, c)
            self.assertEqual(read(self.conf(c + ".default")), src, c)
            self.assertFalse(os.stat(self.conf(c)).st_mode & stat.S_IWOTH, c)

    def test_reinstall_keeps_edited_conf(self):
        self.install()
        with open(self.conf("edge.conf"), "a") as f:
            f.write("max-connections 10\n")
        edited = read(self.conf("edge.conf"))
        out = self.install()
        self.assertEqual(read(self.conf("edge.conf")), edited)
        self.assertIn("Keeping edited: %s" % self.conf("edge.conf"), out)
        self.assertEqual(read(self.conf("edge.conf.default")),
                         read(os.path.join(SOURCE, "conf", "edge.conf")))
        self.assertEqual(read(self.conf("broker.conf")),
                         read(os.path.join(SOURCE, "conf", "broker.conf")))
        self.assertNotIn("Keeping edited: %s" % self.conf("broker.conf"), out)

    def test_reinstall_updates_unedited_conf(self):
        """A conf still as an older release shipped it follows the new one."""
        self.install()
        for name in ("broker.conf", "broker.conf.default"):
            with open(self.conf(name), "w") as f:
                f.write("# as an older release shipped it\nlink-port 7400\n")
        out = self.install()
        self.assertNotIn("Keeping edited", out)
        self.assertEqual(read(self.conf("broker.conf")),
                         read(os.path.join(SOURCE, "conf", "broker.conf")))

    def test_conf_put_by_hand_is_kept(self):
        os.makedirs(self.conf(""))
        with open(self.conf("edge.conf"), "w") as f:
            f.write("port 9000\n")
        out = self.install()
        self.assertEqual(read(self.conf("edge.conf")), b"port 9000\n")
        self.assertIn("Keeping edited", out)
        self.assertTrue(os.path.exists(self.conf("edge.conf.default")))

    def unit(self, name):
        with open(self.path(UNIT_DIR, name)) as f:
            return parse_unit(f.read())

    def test_units_structure(self):
        self.install()
        for name in UNITS:
            prog = name[:-len(".service")]
            conf = prog[len("herald-"):] + ".conf"
            u = self.unit(name)
            self.assertEqual(set(u), {"Unit", "Service", "Install"}, name)
            svc = u["Service"]
            self.assertTrue(u["Unit"]["Description"][0], name)
            self.assertEqual(svc["ExecStart"],
                             ["%s/bin/%s /etc/herald/%s" % (PREFIX, prog, conf)], name)
            self.assertEqual(svc["ExecReload"], ["/bin/kill -HUP $MAINPID"], name)
            self.assertEqual(svc["Restart"], ["on-failure"], name)
            self.assertGreaterEqual(int(svc["LimitNOFILE"][0]), 65536, name)
            self.assertEqual(u["Install"]["WantedBy"], ["multi-user.target"], name)
            # systemd's SIGKILL must come after the drain's deadline.
            m = re.search(rb"^shutdown-timeout (\S+)$", read(self.conf(conf)), re.M)
            self.assertIsNotNone(m, conf)
            self.assertGreater(seconds(svc["TimeoutStopSec"][0]), seconds(m.group(1).decode()),
                               name)

    def test_units_systemd_analyze_verify(self):
        tool = shutil.which("systemd-analyze")
        if not tool:
            self.skipTest("systemd-analyze is not installed (the structure is checked anyway)")
        self.install()
        # verify requires ExecStart's program to exist: point the copies at DESTDIR.
        units = tempfile.mkdtemp(prefix="herald-units-")
        try:
            paths = []
            for name in UNITS:
                with open(self.path(UNIT_DIR, name)) as f:
                    text = f.read()
                text = text.replace(PREFIX + "/bin/", self.path(PREFIX, "bin") + "/")
                text = text.replace("/etc/herald/", self.conf("") )
                paths.append(os.path.join(units, name))
                with open(paths[-1], "w") as f:
                    f.write(text)
            p = subprocess.run([tool, "verify"] + paths, capture_output=True, text=True,
                               timeout=60)
            # Unknown keys and bad values are only warnings: none is allowed.
            self.assertEqual((p.returncode, p.stdout + p.stderr), (0, ""))
        finally:
            shutil.rmtree(units, ignore_errors=True)

    def exec_start(self, name):
        """The unit's ExecStart as an argv inside DESTDIR."""
        argv = self.unit(name)["Service"]["ExecStart"][0].split()
        return [self.path(a) if a.startswith("/") else a for a in argv]

    def test_installed_programs_start_from_installed_conf(self):
        self.install()
        link = free_port()
        b = Process(self.exec_start("herald-broker.service") +
                    ["--link-port", str(link), "--resp-port", "0", "--http-port", "0"])
        try:
            e = Process(self.exec_start("herald-edge.service") +
                        ["--port", str(free_port()), "--broker", "127.0.0.1:%d" % link,
                         "--workers", "1"])
            try:
                self.assertTrue(e.wait_log("event=uplink_up", 20), e.log())
            finally:
                e.check_clean_exit(self)
        finally:
            b.check_clean_exit(self)
        p = subprocess.run([self.path(PREFIX, "bin", "herald"), "--help"], capture_output=True,
                           text=True, timeout=30)
        self.assertIn("usage", (p.stdout + p.stderr).lower())

    def test_make_install_passes_prefix_and_destdir(self):
        p = subprocess.run(["make", "-n", "-C", SOURCE, "install", "PREFIX=/opt/h",
                            "DESTDIR=/tmp/x", "BUILD=b"], capture_output=True, text=True,
                           timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertRegex(p.stdout, r"DESTDIR=\S*/tmp/x\S* cmake --install b --prefix \S*/opt/h")


if __name__ == "__main__":
    unittest.main(verbosity=2)
