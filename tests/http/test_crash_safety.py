#!/usr/bin/env python3
"""Crash safety: SIGKILL at random moments, then a restart on the same store.

Feedback writes (SQLite, and PostgreSQL when ctest's "pg" fixture gives a
server): client threads post feedback as fast as they can (single objects
and array batches, some with an Idempotency-Key, text and conversational
items) and record every acknowledged (2xx) request; the daemon is killed
after a random short time, several rounds on one store. After each kill:

- SQLite: the file, opened read-only with the daemon dead, passes
  PRAGMA integrity_check and is still in WAL mode; PostgreSQL: amcheck's
  bt_index_check (heapallindexed) on every index of the tables, when the
  extension is installed;
- in the database itself and after a restart through the API: every
  acknowledged id is there with its exact content (GET /v1/feedback/{id}),
  every request is all or nothing (a batch that was never answered is
  either fully there or absent), no item is stored twice, every stored
  Idempotency-Key names rows that exist, /v1/feedback/stats counts what
  the listing holds, and acknowledged ids of earlier rounds are all still
  there;
- replaying every keyed request after the restart (same key, same bytes)
  answers the original ids (200, Idempotent-Replayed) when it had been
  stored, also when its answer was lost to the kill; a keyed request that
  was not stored is stored once by the replay.
The counts of acknowledged vs recovered writes are printed per round and
backend.

Adapter promotion (stories260K from ../shared/models; SQLite): four loop
runs (POST /v1/training/runs, test_training_loop.py's FAST settings with 2
epochs, the base activated first so that the gate promotes) are killed
when the new version's folder appears (+ 0 and + 1-20 ms: while its files
are written, before or after its registration, during its activation),
when its registration is visible in the file, and right after the log says
it is served (before the run's end is written); then activations (POST
/v1/adapters/{id}/activate, every adapter and the base in turn, from a
client thread) are killed at random moments, four times. After each kill
and restart:

- the store passes integrity_check; at most one adapter is "active";
- every registered adapter's folder holds its files and the sha256 of its
  adapter_model.safetensors is the one the registry recorded;
- the registry and serving agree: the greedy tokens and log-probs of the
  plain model name equal those of the active adapter's folder loaded as a
  configured adapter (MODEL:NAME), or the base's when none is active;
- the interrupted run is "failed" ("interrupted") or "succeeded", never
  left "running"; a run that names an adapter names its own, and every run
  whose adapter was registered names it (an interrupted one too: the new
  trainer's sweep links it);
- an activation the client saw acknowledged is in force unless a later
  one was in flight (then either).
The SIGKILL while a run trains its steps is test_training_loop.py's.

The random choices (kill delays, request mix) come from a seed printed
with the counts; ALIGND_CRASH_SEED=N repeats them (the timing of the
daemon still varies). Skips loudly without ../shared (the promotion part)
or without a PostgreSQL server (the PostgreSQL variant)."""
import hashlib
import http.client
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import alignd_harness as H  # noqa: E402
import pairs_util as P  # noqa: E402
from pg_util import pg_url, psql, with_schema  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL = os.path.join(HERE, "..", "..", "..", "shared", "models", "stories260K.gguf")
SEED = int(os.environ.get("ALIGND_CRASH_SEED", "0")) or random.randrange(1, 1 << 30)
FB_ROUNDS = 5
FB_WRITERS = 4
FB_MAX_BATCH = 10
# test_training_loop.py's FAST settings with 2 epochs: a run here only has to
# reach the gate and pass it (the happy rule is learnt by then)
FAST = ["--training.epochs=2", "--training.batch=8", "--training.lr=2e-3",
        "--training.lora_targets=q,k,v,o", "--training.kl_max=50",
        "--training.gate_rm_min_accuracy=2"]
RUN_TIMEOUT = 300
REQUEST_ERRORS = (OSError, http.client.HTTPException)


def note(msg):
    print(msg, file=sys.stderr, flush=True)


def sigkill(d):
    """SIGKILLs daemon d and closes what Daemon.__exit__ would."""
    if d.proc.poll() is None:
        d.proc.send_signal(signal.SIGKILL)
    d.proc.wait()
    d.stderr_file.close()
    text = d.stderr()
    if "Sanitizer" in text or "runtime error" in text:
        raise AssertionError("alignd reported a sanitizer error:\n" + text[-20000:])


def sqlite_ro(db):
    return sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10, check_same_thread=False)


def sqlite_integrity(tc, db):
    """integrity_check ok and WAL mode, read-only, the daemon stopped."""
    con = sqlite_ro(db)
    try:
        ic = [r[0] for r in con.execute("PRAGMA integrity_check")]
        tc.assertEqual(ic, ["ok"], f"{db}: integrity_check")
        tc.assertEqual(con.execute("PRAGMA journal_mode").fetchone()[0], "wal", db)
    finally:
        con.close()
    with open(db, "rb") as f:  # bytes 18 and 19 of the header: 2 = WAL
        hdr = f.read(20)
    tc.assertEqual((hdr[18], hdr[19]), (2, 2), f"{db}: header not in WAL mode")


# ---- feedback ------------------------------------------------------------------


class Req:
    """One POST /v1/feedback as sent: items, body bytes, key, answer."""

    def __init__(self, tag, items, many, key):
        self.tag, self.items, self.many, self.key = tag, items, many, key
        self.body = json.dumps(items if many else items[0]).encode()
        self.status, self.ids = None, None  # ids when acknowledged

    @property
    def acked(self):
        return self.status in (200, 201)


def fb_item(tag, rng):
    """A feedback item whose fields all carry tag (metadata.tag finds it)."""
    kind = rng.choice(["pair", "pair", "pair", "tie", "both_bad"])
    if rng.random() < 0.2:  # TRL's conversational form
        it = {"prompt": [{"role": "system", "content": "be brief"},
                         {"role": "user", "content": f"{tag}: 2+2? ✓"}],
              "chosen": [{"role": "assistant", "content": f"{tag}: 4"}],
              "rejected": [{"role": "assistant", "content": f"{tag}: 5 \"quoted\"\n"}]}
    else:
        it = {"prompt": f"{tag} once upon a time, naïve 雪 \"q\"\n\tend",
              "chosen": f"{tag} good " + "x" * rng.randrange(0, 300),
              "rejected": f"{tag} bad"}
    it["kind"] = kind
    it["metadata"] = {"tag": tag, "n": rng.randrange(1000), "nested": {"a": [1, 2.5, None]}}
    if rng.random() < 0.5:
        it["annotator"] = f"ann{rng.randrange(5)}"
    if rng.random() < 0.3:
        it["comment"] = f"{tag} comment ünïcode"
    if rng.random() < 0.2:
        it["source"] = "form"
    if rng.random() < 0.3:
        it["model"] = "m1"
    return it


def fb_expected(it):
    """The fields of GET /v1/feedback/{id} that echo item it."""
    return {"prompt": it["prompt"], "chosen": it["chosen"], "rejected": it["rejected"],
            "kind": it.get("kind", "pair"), "annotator": it.get("annotator"),
            "comment": it.get("comment"), "metadata": it["metadata"],
            "source": it.get("source", "api"), "model": it.get("model"), "adapter": None}


def fb_tag_of(metadata_text):
    try:
        return json.loads(metadata_text)["tag"]
    except (TypeError, ValueError, KeyError):
        return None


class FeedbackCrash(unittest.TestCase):
    """FB_ROUNDS rounds on one store: a daemon, FB_WRITERS writer threads,
    SIGKILL after a random short time; the file checked; a restart on it
    checks the round through the API and replays its keyed requests."""

    def test_sqlite(self):
        tmp = tempfile.mkdtemp(prefix="alignd_crash_fb_")
        db = os.path.join(tmp, "alignd.db")
        try:
            self.crash_rounds("sqlite", [f"--store.path={db}"], lambda: self.sqlite_snapshot(db))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def test_postgresql(self):
        base = pg_url()
        if not base or not shutil.which("psql"):
            note("\n*** SKIPPED: the PostgreSQL variant needs the test PostgreSQL server (ctest "
                 "fixture pg: ALIGND_TEST_PG_URL_FILE) and psql ***")
            self.skipTest("no PostgreSQL server")
        schema = f"crash_{os.getpid()}"
        psql(base, f"DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}")
        url = with_schema(base, schema)
        # the daemon's sessions carry the schema's name (pg_snapshot waits for them to end)
        try:
            self.crash_rounds("postgresql", [f"--store.url={url}&application_name={schema}"],
                              lambda: self.pg_snapshot(url, schema))
        finally:
            psql(base, f"DROP SCHEMA IF EXISTS {schema} CASCADE")

    # ---- the database, read directly with the daemon dead ---------------------

    def sqlite_snapshot(self, db):
        sqlite_integrity(self, db)
        con = sqlite_ro(db)
        try:
            rows = {i: {"tag": fb_tag_of(m)}
                    for i, m in con.execute("SELECT id, metadata FROM feedback")}
            idem = {k: json.loads(r)
                    for k, r in con.execute("SELECT key, response FROM idempotency")}
        finally:
            con.close()
        return rows, idem, "integrity_check ok, WAL"

    def pg_snapshot(self, url, schema):
        # a server process may still be committing what the killed daemon
        # sent: read once every session of the daemon has ended
        t0 = time.time()
        while psql(url, "SELECT count(*) FROM pg_stat_activity "
                        f"WHERE application_name = '{schema}'").strip() != "0":
            self.assertLess(time.time() - t0, 60, "the killed daemon's sessions did not end")
            time.sleep(0.05)
        checked = "no amcheck"
        try:
            psql(url, f"CREATE EXTENSION IF NOT EXISTS amcheck SCHEMA {schema}")
            ns = psql(url, "SELECT extnamespace::regnamespace FROM pg_extension "
                           "WHERE extname = 'amcheck'").strip()
        except AssertionError as e:
            ns = ""
            note(f"  (amcheck unavailable, index checks skipped: {str(e).strip()[:200]})")
        if ns:
            out = psql(url, f"SELECT c.relname, {ns}.bt_index_check(c.oid, true) FROM pg_index i "
                            "JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam "
                            f"WHERE a.amname = 'btree' AND c.relnamespace = '{schema}'::regnamespace")
            n = len(out.split())
            self.assertGreaterEqual(n, 5, out)  # feedback's 4 and idempotency's 1 at least
            checked = f"amcheck ok on {n} indexes"
        rows = {}
        sql = "SELECT json_build_object('id', id, 'm', metadata) FROM feedback"
        for line in psql(url, sql).splitlines():
            r = json.loads(line)
            rows[r["id"]] = {"tag": fb_tag_of(r["m"])}
        idem = {}
        sql = "SELECT json_build_object('k', key, 'r', response) FROM idempotency"
        for line in psql(url, sql).splitlines():
            r = json.loads(line)
            idem[r["k"]] = json.loads(r["r"])
        return rows, idem, checked

    # ---- one backend -------------------------------------------------------------

    def crash_rounds(self, backend, store_flags, snapshot):
        rng = random.Random(f"{SEED}-{backend}")
        flags = [*store_flags, f"--feedback.max_batch={FB_MAX_BATCH}", "--training.enabled=false"]
        acked_all = {}   # id -> True: every acknowledged row of every round
        known = {}       # tag -> id of every row the test knows to be stored
        totals = [0, 0, 0, 0]
        note(f"\nfeedback crash rounds on {backend} (seed {SEED}):")
        for rnd in range(FB_ROUNDS):
            delay = rng.uniform(0.15, 1.2)
            d = H.Daemon(*flags).__enter__()
            try:
                reqs = self.write_until_killed(d, backend, rnd, delay, rng.randrange(1 << 30))
            finally:
                sigkill(d)
            rows, idem, integrity = snapshot()
            d = H.Daemon(*flags).__enter__()
            try:
                counts = self.verify_round(d, reqs, rows, idem, acked_all, known)
                d.stop()
            finally:
                if d.proc.poll() is None:
                    sigkill(d)
                else:
                    d.__exit__(None, None, None)
            totals = [a + b for a, b in zip(totals, counts)]
            note(f"  round {rnd + 1}: killed after {delay:.2f}s; acknowledged {counts[0]} writes "
                 f"({counts[1]} rows), recovered {counts[2]} of those rows; {counts[3]} requests "
                 f"unanswered at the kill ({self.unanswered_note}); {integrity}")
        rows, _, integrity = snapshot()  # after the last, orderly stop
        self.assertEqual(sorted(rows), sorted(known.values()))
        note(f"  {backend}: acknowledged {totals[0]} writes / {totals[1]} rows, recovered "
             f"{totals[2]} rows (all), {totals[3]} unanswered requests all-or-nothing; "
             f"{len(known)} rows stored in all")
        self.assertEqual(totals[1], totals[2])
        self.assertGreater(totals[0], 20, "too few acknowledged writes to mean anything")

    def write_until_killed(self, d, backend, rnd, delay, seed):
        stop = threading.Event()
        out = [[] for _ in range(FB_WRITERS)]

        def writer(w):
            r = random.Random(seed + w)
            seq = 0
            while not stop.is_set():
                x = r.random()
                many = x >= 0.5
                n = r.randrange(2, FB_MAX_BATCH + 1) if many else 1
                key = f"crash-{backend}-{rnd}-{w}-{seq}" if r.random() < 0.4 else None
                tag = f"{backend[:2]}{rnd}w{w}s{seq}"
                req = Req(tag, [fb_item(f"{tag}i{j}", r) for j in range(n)], many, key)
                seq += 1
                hdrs = {"Content-Type": "application/json"}
                if key:
                    hdrs["Idempotency-Key"] = key
                out[w].append(req)
                try:
                    status, _, body = d.request("POST", "/v1/feedback", req.body, hdrs, timeout=20)
                except ConnectionRefusedError:
                    out[w].pop()  # after the kill: it never reached the daemon
                    return
                except REQUEST_ERRORS:
                    return  # the kill: the request is in doubt
                req.status = status
                if status not in (200, 201):
                    req.error = body
                    continue
                b = json.loads(body)
                req.ids = [x["id"] for x in (b["data"] if many else [b])]

        threads = [threading.Thread(target=writer, args=(w,)) for w in range(FB_WRITERS)]
        for t in threads:
            t.start()
        time.sleep(delay)
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait()
        stop.set()
        for t in threads:
            t.join(30)
            self.assertFalse(t.is_alive(), "a writer hung after the kill")
        reqs = [q for w in out for q in w]
        bad = [(q.status, getattr(q, "error", b"")[:300]) for q in reqs
               if q.status is not None and not q.acked]
        self.assertEqual(bad, [], "writes refused while the daemon ran")
        return reqs

    def list_all(self, d):
        rows, cursor = [], None
        while True:
            q = "/v1/feedback?limit=1000" + (f"&after={cursor}" if cursor else "")
            s, _, b = d.json("GET", q, timeout=60)
            self.assertEqual(s, 200, b)
            rows += b["data"]
            if not b["has_more"]:
                return rows
            cursor = b["next_cursor"]

    def verify_round(self, d, reqs, db_rows, db_idem, acked_all, known):
        """Checks a killed round's requests against the store (db_rows and
        db_idem read directly, then the restarted daemon d). Returns
        [acked requests, acked rows, recovered acked rows, unanswered]."""
        # -- the database as the kill left it ---------------------------------------
        by_tag = {}
        for i, r in db_rows.items():
            self.assertIsNotNone(r["tag"], f"row {i} without its tag")
            self.assertNotIn(r["tag"], by_tag, f"item {r['tag']} stored twice")
            by_tag[r["tag"]] = i
        for key, ids in db_idem.items():
            missing = [i for i in ids if i not in db_rows]
            self.assertEqual(missing, [], f"Idempotency-Key {key} names rows that are not stored")
        lost = [i for i in acked_all if i not in db_rows]
        self.assertEqual(lost, [], "acknowledged rows of earlier rounds lost")

        # -- through the API after the restart ----------------------------------------
        listed = self.list_all(d)
        self.assertEqual(sorted(r["id"] for r in listed), sorted(db_rows),
                         "the restarted daemon lists other rows than the file holds")
        s, _, st = d.json("GET", "/v1/feedback/stats")
        self.assertEqual((s, st["total"]), (200, len(listed)), st)

        acked_n = rows_n = recovered = unanswered = 0
        self.unanswered_note = ""
        stored_unanswered = absent_unanswered = 0
        for q in reqs:
            tags = [it["metadata"]["tag"] for it in q.items]
            present = [t for t in tags if t in by_tag]
            if q.acked:
                acked_n += 1
                rows_n += len(q.ids)
                self.assertEqual(len(q.ids), len(q.items))
                for i, it in zip(q.ids, q.items):
                    self.assertEqual(db_rows.get(i, {}).get("tag"), it["metadata"]["tag"],
                                     f"acknowledged {i} ({it['metadata']['tag']}) lost or changed")
                    s, _, g = d.json("GET", f"/v1/feedback/{i}")
                    self.assertEqual(s, 200, f"acknowledged {i} lost: {g}")
                    self.assertEqual({k: g[k] for k in fb_expected(it)}, fb_expected(it), i)
                    recovered += 1
                    acked_all[i] = True
                    known[it["metadata"]["tag"]] = i
                continue
            unanswered += 1
            # in doubt: all of it or none of it
            self.assertIn(len(present), (0, len(tags)),
                          f"request {q.tag} ({len(tags)} items) partly stored: {present}")
            if present:
                stored_unanswered += 1
                q.ids = [by_tag[t] for t in tags]
                for i, it in zip(q.ids, q.items):
                    g = d.json("GET", f"/v1/feedback/{i}")[2]
                    self.assertEqual({k: g[k] for k in fb_expected(it)}, fb_expected(it), i)
                    known[it["metadata"]["tag"]] = i
            else:
                absent_unanswered += 1
            if q.key:
                stored = db_idem.get(q.key)
                self.assertEqual(stored, q.ids, f"request {q.tag}: its key and rows disagree")
        self.unanswered_note = f"{stored_unanswered} stored whole, {absent_unanswered} absent"

        # -- retries after the restart: the same key and bytes -------------------------
        for q in reqs:
            if not q.key:
                continue
            hdrs = {"Content-Type": "application/json", "Idempotency-Key": q.key}
            s, h, body = d.request("POST", "/v1/feedback", q.body, hdrs, timeout=20)
            b = json.loads(body)
            ids = [x["id"] for x in (b["data"] if q.many else [b])] if s in (200, 201) else None
            if q.ids is not None:  # stored before the kill: a replay
                self.assertEqual((s, h.get("idempotent-replayed")), (200, "true"), (q.tag, b))
                self.assertEqual(ids, q.ids, f"replay of {q.tag} answered other ids")
            else:  # never stored: stored now, once
                self.assertEqual(s, 201, (q.tag, b))
                for i, it in zip(ids, q.items):
                    known[it["metadata"]["tag"]] = i
                    acked_all[i] = True
        s, _, st = d.json("GET", "/v1/feedback/stats")
        self.assertEqual(st["total"], len(known), "rows appeared or vanished through the replays")
        return [acked_n, rows_n, recovered, unanswered]


# ---- adapter promotion and activation -------------------------------------------

CONT = ["smiled", "jumped", "laughed", "ran home", "sang a song", "hugged mom", "danced"]


def loop_pairs(extra_round=None):
    """Synthetic pairs of the happy rule (pairs_util.py's, without sampling):
    the base set, or the few pairs that round extra_round adds so that each
    run trains on other data (and its adapter differs)."""
    out = []
    if extra_round is None:
        for n in P.NAMES:
            for t in P.THINGS[:5]:
                c = CONT[(len(n) * 7 + len(t)) % len(CONT)]
                out.append({"prompt": P.prompt(n, t), "chosen": f" happy and {c}.",
                            "rejected": f" sad and {c}."})
    else:
        for k in range(4):
            n, t = P.NAMES[(extra_round * 3 + k) % len(P.NAMES)], f"gift{extra_round}x{k}"
            c = CONT[(extra_round + k) % len(CONT)]
            out.append({"prompt": P.prompt(n, t), "chosen": f" happy, {c} and {c}.",
                        "rejected": f" sad, {c} and {c}."})
    return out


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class LogTail:
    """What daemon d logged since now, read incrementally."""

    def __init__(self, d):
        self.f = open(d.log_path, "rb")
        self.f.seek(0, os.SEEK_END)
        self.text = ""

    def read(self):
        chunk = self.f.read()
        if chunk:
            self.text += chunk.decode(errors="replace")
        return self.text

    def close(self):
        self.f.close()


class KillWatcher(threading.Thread):
    """SIGKILLs daemon d delay seconds after cond() first returns True
    (polled every half millisecond); stops without killing when it returns
    a string (why) or after timeout."""

    def __init__(self, d, cond, delay, timeout=RUN_TIMEOUT):
        super().__init__(daemon=True)
        self.d, self.cond, self.delay, self.timeout = d, cond, delay, timeout
        self.fired, self.why = False, f"nothing within {timeout}s"
        self.start()

    def run(self):
        t0 = time.time()
        while time.time() - t0 < self.timeout and self.d.proc.poll() is None:
            try:
                c = self.cond()
            except Exception as e:  # noqa: BLE001 - reported by the test
                c = f"the watch failed: {e!r}"
            if isinstance(c, str):
                self.why = c
                return
            if c:
                if self.delay:
                    time.sleep(self.delay)
                self.d.proc.send_signal(signal.SIGKILL)
                self.fired = True
                return
            time.sleep(0.0005)


class PromotionCrash(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.path.exists(MODEL):
            note("\n*** SKIPPED: the promotion crash tests need ../shared/models/stories260K.gguf ***")
            raise unittest.SkipTest("../shared absent")
        cls.tmp = tempfile.mkdtemp(prefix="alignd_crash_loop_")
        cls.db = os.path.join(cls.tmp, "alignd.db")
        cls.tdir = os.path.join(cls.tmp, "training")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    # ---- the store as a kill left it ----------------------------------------------

    def registry(self):
        """Adapters and runs read from the file (read-only, daemon dead),
        after its integrity check; each adapter's folder checked."""
        sqlite_integrity(self, self.db)
        con = sqlite_ro(self.db)
        con.row_factory = sqlite3.Row
        try:
            ads = [dict(r) for r in con.execute(
                "SELECT id, model, version, status, path, sha256, run_id FROM adapters "
                "ORDER BY version")]
            runs = {r["id"]: dict(r) for r in con.execute(
                "SELECT id, status, error, adapter_id FROM training_runs")}
        finally:
            con.close()
        self.assertLessEqual(sum(a["status"] == "active" for a in ads), 1, ads)
        for a in ads:
            for f in ("adapter_config.json", "adapter_model.safetensors"):
                self.assertTrue(os.path.isfile(os.path.join(a["path"], f)),
                                f"registered {a['id']} (v{a['version']}): {f} missing in {a['path']}")
            self.assertEqual(sha256_file(os.path.join(a["path"], "adapter_model.safetensors")),
                             a["sha256"], f"registered {a['id']} (v{a['version']}): sha256 differs")
        return ads, runs

    def daemon(self, ads):
        """The daemon on the store, serving every registered adapter's
        folder also as a configured adapter vVERSION (the reference)."""
        conf = ",".join(f"v{a['version']}={a['path']}" for a in ads)
        extra = [f"--model.stories.adapters={conf}"] if conf else []
        return H.Daemon("--model", f"stories={MODEL}", f"--store.path={self.db}",
                        f"--training.dir={self.tdir}", *FAST, *extra).__enter__()

    def greedy(self, d, model):
        out = []
        for pr in P.probe_prompts()[:3]:
            s, _, b = d.json("POST", "/v1/completions", {
                "model": model, "prompt": pr, "max_tokens": 8, "temperature": 0,
                "logprobs": 1}, timeout=60)
            self.assertEqual(s, 200, b)
            c = b["choices"][0]
            out.append((c["text"], c["logprobs"]["tokens"], c["logprobs"]["token_logprobs"]))
        return out

    def consistent(self, d, ads, runs):
        """After a restart: the API's registry is the file's, at most one
        active, serving agrees with it, no run left running. Returns the
        active adapter (None: the base)."""
        s, _, b = d.json("GET", "/v1/adapters")
        self.assertEqual(s, 200, b)
        self.assertEqual(sorted((a["id"], a["status"], a["sha256"], a["path"]) for a in b["data"]),
                         sorted((a["id"], a["status"], a["sha256"], a["path"]) for a in ads))
        active = [a for a in ads if a["status"] == "active"]
        self.assertLessEqual(len(active), 1, b)
        active = active[0] if active else None
        served = self.greedy(d, "stories")
        base = self.greedy(d, "stories:base")
        if active:
            self.assertEqual(served, self.greedy(d, f"stories:v{active['version']}"),
                             f"serving is not the active {active['id']} (v{active['version']})")
            self.assertNotEqual(served, base, "the active adapter serves the base's output")
        else:
            self.assertEqual(served, base, "serving an adapter while none is active")
        s, _, m = d.request("GET", "/metrics")
        v = re.search(r'^alignd_adapter_active_version\{model="stories"\} (\S+)$', m.decode(), re.M)
        self.assertEqual(float(v.group(1)), active["version"] if active else 0)
        s, _, lst = d.json("GET", "/v1/training/runs?limit=100")
        self.assertEqual(s, 200, lst)
        by_run = {a["run_id"]: a["id"] for a in ads}
        for r in lst["data"]:
            self.assertIn(r["status"], ("succeeded", "failed", "cancelled"), r)
            if r["adapter_id"]:  # a run names its own adapter, a registered one
                self.assertEqual(by_run.get(r["id"]), r["adapter_id"], r)
            if r["status"] == "succeeded":
                self.assertEqual(r["adapter_id"], by_run.get(r["id"]), r)
                self.assertIsNotNone(r["adapter_id"], r)
            if r["id"] in by_run:  # killed between its registration and its end too
                self.assertEqual(r["adapter_id"], by_run[r["id"]], r)
        listed = {r["id"] for r in lst["data"]}
        if runs:
            self.assertEqual(listed, set(runs), "the API lists other runs than the file holds")
        for rid in by_run:
            self.assertIn(rid, listed, "an adapter of an unknown run")
        return active

    # ---- the test -------------------------------------------------------------------

    def restart(self, ads):
        """SIGKILLs the current daemon if it runs, checks the file it left
        (registry()) unless ads is given, starts the next one on it."""
        if self.d is not None:
            sigkill(self.d)
        self.d = None
        if ads is None:
            ads, runs = self.registry()
        else:
            runs = {}
        self.d = self.daemon(ads)
        return ads, runs

    def test_kill_around_promotion_and_activation(self):
        self.d = None
        try:
            self.promotion_and_activation()
        finally:
            if self.d is not None:
                sigkill(self.d)

    def promotion_and_activation(self):
        rng = random.Random(f"{SEED}-loop")
        t_start = time.time()
        ads, runs = self.restart([])
        P.post_feedback(self.d, loop_pairs(), model="stories")
        # kill points: the new version's folder appears (+ a delay: while it
        # is written, before or after its registration, while it activates),
        # its row appears in the file (before its activation, mostly), the
        # log says it is served (before the run's end is written)
        points = [("folder", 0.0), ("folder", rng.uniform(0.001, 0.02)), ("registered", 0.0),
                  ("served", 0.0)]
        states = []
        note(f"\nkills around promotion (seed {SEED}):")
        for rnd, (trigger, delay) in enumerate(points):
            d = self.d
            s, _, b = d.json("POST", "/v1/adapters/base/activate", {"model": "stories"})
            self.assertEqual(s, 200, b)  # so that the gate promotes the new one
            P.post_feedback(d, loop_pairs(rnd), model="stories")  # other data, another adapter
            version = max([a["version"] for a in ads], default=0) + 1
            folder = os.path.join(self.tdir, "stories", f"ad-{version}")
            weights = os.path.join(folder, "adapter_model.safetensors")
            orphan = None  # what an earlier kill left of an unregistered folder
            if os.path.exists(folder):
                st = os.stat(weights) if os.path.exists(weights) else None
                orphan = (st.st_ino, st.st_mtime_ns) if st else ()

            def written():
                if orphan is None:
                    return os.path.exists(folder)
                try:
                    st = os.stat(weights)
                except OSError:
                    return False
                return (st.st_ino, st.st_mtime_ns) != orphan

            tail = LogTail(d)

            def served():
                text = tail.read()
                if "serving adapter " in text:
                    return True
                m = re.search(r"run \S+: (succeeded|failed|cancelled|adapter \S+ stays a "
                              r"candidate.*)$", text, re.M)
                return f"the run ended unpromoted: {m.group(0)}" if m else False

            reader = sqlite_ro(self.db)

            def registered():
                try:
                    return reader.execute("SELECT count(*) FROM adapters WHERE model = 'stories' "
                                          "AND version = ?", (version,)).fetchone()[0] > 0
                except sqlite3.OperationalError:  # busy: next time
                    return False

            try:
                cond = {"folder": written, "registered": registered, "served": served}[trigger]
                w = KillWatcher(d, cond, delay)
                t_run = time.time()
                s, _, run = d.json("POST", "/v1/training/runs", {"kind": "dpo"})
                self.assertEqual(s, 202, run)
                w.join(RUN_TIMEOUT + 10)
                t_run = time.time() - t_run
                self.assertTrue(w.fired, f"round {rnd + 1}: no kill after '{trigger}': {w.why}\n"
                                f"{d.log()[-3000:]}")
            finally:
                tail.close()
                reader.close()
            sigkill(d)
            ads, runs = self.registry()
            mine = [a for a in ads if a["run_id"] == run["id"]]
            r = runs[run["id"]]
            state = ("run succeeded" if r["status"] == "succeeded" else
                     "promoted, run's end not written" if mine and mine[0]["status"] == "active" else
                     "registered, not promoted" if mine else
                     "weights written, not registered" if os.path.exists(weights) and
                     (orphan is None or written()) else "folder made, weights not written")
            states.append(state)
            note(f"  round {rnd + 1}: kill {delay * 1000:.1f} ms after '{trigger}', {t_run:.1f}s into "
                 f"the run: {state} (run {r['status']} in the file)")
            self.assertIn(r["status"], ("running", "succeeded"), r)
            self.restart(ads)
            s, _, rr = self.d.json("GET", f"/v1/training/runs/{run['id']}")
            self.assertIn(rr["status"], ("failed", "succeeded"), rr)
            if rr["status"] == "failed":
                self.assertIn("interrupted", rr["error"], rr)
            active = self.consistent(self.d, ads, runs)
            if r["status"] == "succeeded":  # promoted, and nothing activated since
                self.assertEqual(active and active["run_id"], run["id"])
        note(f"  promotion kills left: {'; '.join(states)}")
        self.assertGreaterEqual(len(ads), 2, "the kills left fewer than 2 adapters registered")
        # each round trained on other data: equal outputs above mean the same adapter
        self.assertEqual(len({a["sha256"] for a in ads}), len(ads), ads)

        # -- kills while the API activates adapters and the base in turn -------------
        targets = [a["id"] for a in ads] + ["base"]
        for rnd in range(4):
            d = self.d
            order = targets[:]
            rng.shuffle(order)
            acked, inflight, n, errors = [None], [None], [0], []

            def activator():
                i = 0
                while True:
                    t = order[i % len(order)]
                    i += 1
                    if t == acked[0]:
                        continue
                    inflight[0] = t
                    try:
                        s, _, b = d.json("POST", f"/v1/adapters/{t}/activate", {"model": "stories"})
                    except REQUEST_ERRORS:
                        return  # the kill: t is in doubt
                    if s != 200:
                        errors.append((t, s, b))
                        return
                    acked[0], inflight[0] = t, None
                    n[0] += 1

            th = threading.Thread(target=activator, daemon=True)
            th.start()
            delay = rng.uniform(0.05, 0.5)
            time.sleep(delay)
            sigkill(d)
            th.join(30)
            self.assertEqual(errors, [], "an activation was refused")
            ads, runs = self.restart(None)
            active = self.consistent(self.d, ads, runs)
            now = active["id"] if active else "base"
            note(f"  activation round {rnd + 1}: killed after {delay:.2f}s, {n[0]} activations "
                 f"acknowledged; last acknowledged {acked[0]}, in flight {inflight[0]}; active "
                 f"after the restart: {now}")
            # the last acknowledged one holds, unless a later one was in flight
            self.assertIn(now, {x for x in (acked[0], inflight[0]) if x} or {now})
        self.d.stop()
        self.d.__exit__(None, None, None)
        self.d = None
        sqlite_integrity(self, self.db)
        note(f"  promotion and activation kills: {time.time() - t_start:.1f}s")

if __name__ == "__main__":
    H.main(globals())
