"""What the benchmarks share: a throwaway database (SQLite file or the `madoguchi_bench` PostgreSQL
database), bulk seeding with precomputed ciphertexts and blind indexes, gunicorn on loopback, a
small asyncio HTTP driver, and percentiles. Nothing here is imported by the application.

Traffic goes to 127.0.0.1 only. Call ``configure(...)`` before importing any ``madoguchi`` module:
the configuration is read from the environment at import time.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin"
PG_DB = "madoguchi_bench"
PG_ROLE = "madoguchi_bench"
SECRET = "benchmark-secret-key-not-for-production"
STAFF_PASSWORD = "bench-lantern-orbit-2026"


# ---- the database and the environment -----------------------------------------------------------
def postgres_url() -> str:
    """A fresh `madoguchi_bench` database (same method as scripts/postgres-test-db; never the test one)."""
    if os.geteuid() != 0:
        raise SystemExit("PostgreSQL benchmarks create their database as root (runuser -u postgres)")
    status = subprocess.run(["pg_lsclusters", "--no-header"], capture_output=True, text=True).stdout.split()
    if len(status) >= 4 and status[3] != "online":
        subprocess.run(["pg_ctlcluster", status[0], status[1], "start"], check=True)
    for _ in range(30):
        if subprocess.run(["runuser", "-u", "postgres", "--", "pg_isready", "-q"]).returncode == 0:
            break
        time.sleep(0.5)

    def psql(sql: str) -> str:
        return subprocess.run(
            ["runuser", "-u", "postgres", "--", "psql", "-v", "ON_ERROR_STOP=1", "-qAt", "-c", sql],
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    if "1" not in psql(f"SELECT 1 FROM pg_roles WHERE rolname = '{PG_ROLE}'"):  # noqa: S608 - a constant
        psql(f"CREATE ROLE {PG_ROLE} LOGIN PASSWORD '{PG_ROLE}'")
    subprocess.run(["runuser", "-u", "postgres", "--", "dropdb", "--if-exists", "--force", PG_DB], check=True)
    subprocess.run(["runuser", "-u", "postgres", "--", "createdb", "-O", PG_ROLE, PG_DB], check=True)
    port = status[2] if len(status) >= 3 else "5432"
    # Without TLS, as an app and its database on one machine talk: the test cluster serves TLS
    # (scripts/postgres-test-db), and with libpq's default (prefer) the figures would change with
    # whether the suite ran first. RESULTS.md's PostgreSQL figures are all without it.
    return f"postgresql+psycopg://{PG_ROLE}:{PG_ROLE}@127.0.0.1:{port}/{PG_DB}?sslmode=disable"


@dataclass
class Setup:
    workdir: Path
    database_url: str
    env: dict[str, str]

    @property
    def kind(self) -> str:
        return "postgresql" if self.database_url.startswith("postgresql") else "sqlite"


def configure(kind: str, workdir: Path | None = None) -> Setup:
    """Create the work folder, keys and database; export the settings the apps read."""
    workdir = workdir or Path(f"/tmp/madoguchi-bench-{kind}")
    if workdir.exists():
        shutil.rmtree(workdir)
    (workdir / "instance").mkdir(parents=True)
    url = postgres_url() if kind == "postgresql" else f"sqlite:///{workdir / 'bench.sqlite3'}"
    env = {
        "DATABASE_URL": url,
        "MADOGUCHI_INSTANCE": str(workdir / "instance"),
        "MADOGUCHI_KEY_FILE": str(workdir / "keys.json"),
        "MADOGUCHI_SECRET_KEY": SECRET,
        "MADOGUCHI_OUTBOX_DIR": str(workdir / "outbox"),
        "MADOGUCHI_SMS_OUTBOX_DIR": str(workdir / "outbox" / "sms"),
        "MADOGUCHI_MAIL_BACKEND": "outbox",
        # Every simulated resident comes from 127.0.0.1: the per-address look-up limit would stop
        # the crowd after ten. In production each resident has an address of their own.
        "MADOGUCHI_RATELIMIT_LOOKUP": "1000000 per minute",
        "MADOGUCHI_RATELIMIT_STAFF_SIGNIN": "1000000 per minute",
    }
    os.environ.update(env)
    from madoguchi.crypto import KeyRing

    KeyRing.generate().save(workdir / "keys.json")
    return Setup(workdir, url, {**os.environ, **env})


def make_app():
    """The residents' app in this process, for migrations, seeding and preparing sessions."""
    from reservation import create_app

    return create_app({"WTF_CSRF_ENABLED": True})


def migrate(app) -> None:
    from flask_migrate import upgrade

    with app.app_context():
        upgrade(directory=str(ROOT / "migrations"))


# ---- seeding in bulk ------------------------------------------------------------------------------
FAMILY = (
    "サトウ",
    "スズキ",
    "タカハシ",
    "タナカ",
    "ワタナベ",
    "イトウ",
    "ヤマモト",
    "ナカムラ",
    "コバヤシ",
    "カトウ",
)
GIVEN = ("タロウ", "ハナコ", "ケンタ", "ユイ", "ソウタ", "ミオ", "ハルト", "アオイ", "リク", "サクラ")
KANJI = ("江東", "太郎")
ADDRESSES = {
    "honchosha": "東京都江東区東陽4丁目11番28号",
    "sogo": "東京都江東区大島4丁目5番1号",
    "toyosu": "東京都江東区豊洲2丁目2番18号",
}


@dataclass(frozen=True)
class Person:
    id: str
    number: str
    birth: date
    phone: str
    venue_id: int


def person(index: int, venue_ids: list[int]) -> tuple[str, str, date, str, int]:
    from madoguchi import numbers

    number = numbers.make(f"{index + 10**9:011d}")
    birth = date(1940 + index % 70, 1 + index % 12, 1 + index % 28)
    phone = f"090{index % 10**8:08d}"
    return number, f"{number}", birth, phone, venue_ids[index % len(venue_ids)]


def applicant_rows(ring, start: int, count: int, venue_ids: list[int], now: datetime, *, full: bool = True):
    """Rows exactly as the model would write them: AES-GCM bound to (table, column, row id, key id),
    blind indexes of the normalised values (see Applicant.refresh_blind_indexes)."""
    from madoguchi import normalize

    rows, people = [], []
    for index in range(start, start + count):
        row_id = secrets.token_hex(16)
        number, _, birth, phone, venue_id = person(index, venue_ids)
        kana = f"{FAMILY[index % 10]}　{GIVEN[(index // 10) % 10]}"
        venue_code = list(ADDRESSES)[venue_ids.index(venue_id) % 3]

        def enc(column, value, row_id=row_id):
            return ring.encrypt(value, table="applicants", column=column, row_id=row_id)

        def bidx(index_name, value):
            return ring.blind_index(table="applicants", index=index_name, normalized=value)

        nkana = normalize.kana(kana)
        rows.append(
            dict(
                id=row_id,
                reservation_number_ct=enc("reservation_number", number),
                reservation_number_bidx=bidx("reservation_number", number),
                name_ct=enc("name", "　".join(KANJI)),
                name_kana_ct=enc("name_kana", kana),
                name_kana_bidx=bidx("name_kana", nkana),
                birth_date_ct=enc("birth_date", birth.isoformat()),
                kana_birth_bidx=bidx("kana_birth", f"{nkana}|{birth.isoformat()}"),
                sex_ct=enc("sex", "男" if index % 2 else "女"),
                postal_code_ct=enc("postal_code", "135-8383") if full else None,
                address_ct=enc("address", ADDRESSES[venue_code]),
                email_ct=enc("email", f"r{index}@example.jp") if full and index % 5 < 3 else None,
                phone_ct=enc("phone", phone),
                phone_bidx=bidx("phone", normalize.phone(phone)),
                venue_id=venue_id,
                source="roster",
                created_at=now,
                updated_at=now,
            )
        )
        people.append(Person(row_id, number, birth, phone, venue_id))
    return rows, people


def seed_venues_and_slots(app, weeks: int) -> list[int]:
    """Koto City's three venues with their real opening hours and capacities, slots for ``weeks``."""
    from madoguchi import dates, venues
    from madoguchi.demo import KOTO_VENUES
    from madoguchi.extensions import db
    from madoguchi.models import Venue

    with app.app_context():
        made = []
        for spec in KOTO_VENUES:
            venue = Venue(**spec, open_weekdays="01234")
            db.session.add(venue)
            db.session.flush()
            made.append(venue)
        today = dates.today()
        for venue in made:
            venues.generate_slots(venue, today, today + timedelta(weeks=weeks))
        db.session.commit()
        return [v.id for v in made]


def seed_applicants(
    app, count: int, venue_ids: list[int], *, start: int = 0, chunk: int = 5000
) -> list[Person]:
    from madoguchi.crypto import current_keyring
    from madoguchi.extensions import db
    from madoguchi.models import Applicant

    people: list[Person] = []
    now = datetime.now(UTC)
    with app.app_context():
        ring = current_keyring()
        table = Applicant.__table__
        for first in range(start, start + count, chunk):
            rows, made = applicant_rows(ring, first, min(chunk, start + count - first), venue_ids, now)
            db.session.execute(table.insert(), rows)
            people += made
        db.session.commit()
    return people


def seed_staff(app, venue_ids: list[int]) -> dict[str, tuple[str, str]]:
    """An operator (call center) and a venue staff member, with TOTP enrolled: login → secret."""
    import pyotp

    from madoguchi import auth, dates
    from madoguchi.extensions import db

    made = {}
    with app.app_context():
        today = dates.today()
        for login, roles, venue in (
            ("bench-operator", ("operator",), None),
            ("bench-operator2", ("operator",), None),
            ("bench-venue", ("venue_staff",), venue_ids[0]),
        ):
            staff = auth.create_staff(
                login_id=login,
                name="ベンチ職員",
                affiliation="ベンチマーク",
                roles=roles,
                venue_id=venue,
                duty_start=today - timedelta(days=1),
                duty_end=today + timedelta(days=30),
                password=STAFF_PASSWORD,
            )
            staff.totp_secret = pyotp.random_base32()
            staff.totp_enrolled_at = dates.now()
            made[login] = staff.totp_secret
        db.session.commit()
    return made


def future_slots(app, venue_id: int | None = None) -> list[tuple[int, int, int]]:
    """(slot id, venue id, places left) of future slots."""
    from sqlalchemy import select

    from madoguchi import dates
    from madoguchi.extensions import db
    from madoguchi.models import Slot

    with app.app_context():
        query = select(Slot.id, Slot.venue_id, Slot.capacity - Slot.taken).where(Slot.starts_at > dates.now())
        if venue_id is not None:
            query = query.where(Slot.venue_id == venue_id)
        return [tuple(r) for r in db.session.execute(query)]


def overbooking(app) -> dict[str, int]:
    """Slots holding more live bookings and holds than places, and slots whose counter disagrees."""
    from sqlalchemy import text

    from madoguchi.extensions import db

    with app.app_context():
        rows = db.session.execute(
            text(
                "SELECT s.id, s.capacity, s.taken, "
                " (SELECT count(*) FROM bookings b WHERE b.slot_id = s.id "
                "   AND b.status IN ('booked', 'arrived', 'handed_over')) AS live, "
                " (SELECT count(*) FROM holds h WHERE h.slot_id = s.id) AS held "
                "FROM slots s"
            )
        ).all()
        bookings = db.session.execute(text("SELECT count(*) FROM bookings")).scalar()
    return {
        "slots": len(rows),
        "bookings": bookings,
        "overbooked": sum(1 for _, cap, _, live, held in rows if live + held > cap or live > cap),
        "counter_mismatch": sum(1 for _, _, taken, live, held in rows if taken != live + held),
    }


# ---- servers --------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# The residents' site runs at a lower CPU priority than the staff apps, as scripts/serve runs it: in
# a burst the call center and the venues get the cores first (R9.2; docs/administration.md).
RESIDENTS_NICENESS = 10


class Server:
    """One gunicorn on 127.0.0.1 (no access log: it would measure the disk, not the app), at
    ``niceness`` (``nice``; the residents' site and the ceiling app at ``RESIDENTS_NICENESS``)."""

    def __init__(
        self,
        setup: Setup,
        app_spec: str,
        *,
        workers: int = 2,
        worker_class: str = "sync",
        threads: int = 1,
        env: dict | None = None,
        chdir: Path | None = None,
        name: str = "app",
        niceness: int = 0,
    ):
        self.port = free_port()
        self.name = name
        args = [
            str(BIN / "gunicorn"),
            "--workers",
            str(workers),
            "--worker-class",
            worker_class,
            "--bind",
            f"127.0.0.1:{self.port}",
            "--no-control-socket",
            "--backlog",
            "2048",
            "--timeout",
            "120",
            "--log-level",
            "warning",
        ]
        if worker_class == "gthread":
            args += ["--threads", str(threads)]
        if chdir:
            args += ["--chdir", str(chdir)]
        self.log = open(setup.workdir / f"{name}-{self.port}.log", "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            ["nice", "-n", str(niceness), *args, app_spec],
            env={**setup.env, **(env or {})},
            cwd=str(ROOT),
            stdout=self.log,
            stderr=self.log,
        )
        self.base = f"http://127.0.0.1:{self.port}"
        self._wait()

    def _wait(self) -> None:
        import urllib.request

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"{self.name} did not start; see {self.log.name}")
            try:
                with urllib.request.urlopen(self.base + "/static/css/site.css", timeout=2) as r:  # noqa: S310
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise SystemExit(f"{self.name} did not answer within 30 s")

    def cpu_seconds(self) -> float:
        """CPU time used so far by the master and its workers (Linux /proc, one pass)."""
        ticks = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # a process that ended meanwhile
            if int(stat.parent.name) == self.process.pid or int(fields[1]) == self.process.pid:
                ticks += int(fields[11]) + int(fields[12])  # utime + stime
        return ticks / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


def wait_until_quiet(servers, *, share: float = 0.05, timeout: float = 120) -> float:
    """Wait until the servers together use less than ``share`` of a core (over one second), so work
    an app does in the background after it starts (the call center warms the FAX reader's digit
    classifier) never shares the cores with a measured phase. Returns the seconds waited."""
    started = time.monotonic()
    before = sum(s.cpu_seconds() for s in servers)
    while time.monotonic() - started < timeout:
        time.sleep(1)
        now = sum(s.cpu_seconds() for s in servers)
        if now - before < share:
            break
        before = now
    return time.monotonic() - started


# ---- measuring ------------------------------------------------------------------------------------
@contextmanager
def cores_used(servers):
    """How many cores the load client (this process) and the app servers used during the block:
    the client shares the machine, so a phase whose client needs a core leaves one to the servers."""
    share: dict[str, float] = {}
    wall, client = time.perf_counter(), time.process_time()
    before = sum(server.cpu_seconds() for server in servers)
    yield share
    elapsed = time.perf_counter() - wall
    share["client"] = (time.process_time() - client) / elapsed
    share["servers"] = (sum(server.cpu_seconds() for server in servers) - before) / elapsed


def cores_line(share: dict[str, float]) -> str:
    return f"   cores used: load client {share['client']:.2f}, app servers {share['servers']:.2f} (of 2; the database's own processes not counted)"


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, int(round(p / 100 * len(ordered) + 0.5)) - 1))
    return ordered[k]


@dataclass
class Stats:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    server_errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    other_status: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    failures: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    counters: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    # (started, ended, kind, ms), wall-clock seconds: to see what else was in flight when a request
    # was slow (``overlapping``), across the load client's processes.
    timeline: list[tuple[float, float, str, float]] = field(default_factory=list)

    def add(
        self, kind: str, seconds: float, status: int, expected=(200, 302), ended: float | None = None
    ) -> None:
        self.latencies[kind].append(seconds * 1000)
        if ended is not None:
            self.timeline.append((ended - seconds, ended, kind, seconds * 1000))
        if status >= 500:
            self.server_errors[kind] += 1
        elif status not in expected:
            self.other_status[f"{kind}:{status}"] += 1

    def table(self, title: str) -> str:
        lines = [
            f"  {title}",
            f"    {'request':<16}{'count':>8}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}{'5xx':>6}",
        ]
        for kind in sorted(k for k, v in self.latencies.items() if v):
            v = self.latencies[kind]
            lines.append(
                f"    {kind:<16}{len(v):>8}{pct(v, 50):>9.1f}{pct(v, 95):>9.1f}{pct(v, 99):>9.1f}"
                f"{max(v):>9.1f}{self.server_errors.get(kind, 0):>6}"
            )
        if self.other_status:
            lines.append(f"    other statuses: {dict(self.other_status)}")
        if self.failures:
            lines.append(f"    transport failures: {dict(self.failures)}")
        return "\n".join(lines)

    @property
    def total_server_errors(self) -> int:
        return sum(self.server_errors.values()) + sum(self.failures.values())


def overlapping(slow: tuple[float, float, str, float], others: list[tuple[float, float, str, float]]) -> str:
    """What ``others`` did while ``slow`` ran: how many requests were in flight and the slowest of
    them. A stall that slows everything at once is the machine's; one request slow alone is its own."""
    started, ended = slow[0], slow[1]
    during = [other for other in others if other[0] < ended and other[1] > started and other is not slow]
    if not during:
        return "nothing else in flight"
    worst = max(during, key=lambda other: other[3])
    return f"{len(during)} other requests in flight, the slowest {worst[2]} {worst[3]:.1f} ms"


CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
HOLD_ID = re.compile(r'name="hold_id"[^>]*value="([0-9a-f]{32})"')
SLOT_ID = re.compile(r'name="slot_id" value="(\d+)"')
REFRESH = re.compile(r'http-equiv="refresh" content="(\d+);')


def csrf_of(html: str) -> str:
    match = CSRF.search(html)
    return match.group(1) if match else ""


class Client:
    """A browser: its own cookies; every request timed and classified; redirects not followed."""

    def __init__(self, base: str, stats: Stats, connector, *, cookies: bool = True):
        import aiohttp

        self.base = base
        self.stats = stats
        self.http = aiohttp.ClientSession(
            connector=connector,
            connector_owner=False,
            # unsafe: keep cookies for 127.0.0.1; a dummy jar when the caller sends its own Cookie header.
            cookie_jar=aiohttp.CookieJar(unsafe=True) if cookies else aiohttp.DummyCookieJar(),
            timeout=aiohttp.ClientTimeout(total=60),
        )

    async def request(
        self, kind: str, method: str, path: str, *, data=None, headers=None, expected=(200, 302)
    ):
        import aiohttp

        started = time.perf_counter()
        try:
            async with self.http.request(
                method, self.base + path, data=data, headers=headers, allow_redirects=False
            ) as response:
                body = await response.text()
                self.stats.add(kind, time.perf_counter() - started, response.status, expected, time.time())
                return response.status, response.headers.get("Location", ""), body
        except (TimeoutError, aiohttp.ClientError) as exc:
            self.stats.failures[f"{kind}:{type(exc).__name__}"] += 1
            return 0, "", ""

    async def close(self) -> None:
        await self.http.close()


# The last TOTP time step each login signed in with: the app takes a code once (replay protection).
_TOTP_STEPS: dict[str, int] = {}


async def staff_sign_in(client: Client, login: str, secret: str) -> bool:
    import pyotp

    totp = pyotp.TOTP(secret)
    step = int(time.time()) // totp.interval
    if _TOTP_STEPS.get(login, -1) >= step:
        # This code was used already (growth.py signs in again a few seconds later): wait for the
        # next one, as a person would.
        step = _TOTP_STEPS[login] + 1
        await asyncio.sleep(max(step * totp.interval - time.time(), 0) + 0.1)
    _TOTP_STEPS[login] = step
    _, _, page = await client.request("staff_signin", "GET", "/signin")
    status, where, _ = await client.request(
        "staff_signin",
        "POST",
        "/signin",
        data={"csrf_token": csrf_of(page), "login_id": login, "password": STAFF_PASSWORD},
    )
    if status != 302:
        return False
    _, _, page = await client.request("staff_signin", "GET", "/signin/code")
    status, _, _ = await client.request(
        "staff_signin",
        "POST",
        "/signin/code",
        data={"csrf_token": csrf_of(page), "code": totp.at(step * totp.interval)},
    )
    return status == 302


def machine() -> str:
    load = os.getloadavg()
    mem = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.0f} GiB"
    except OSError:
        pass
    return (
        f"{os.cpu_count()} cores, {mem} RAM, Python {sys.version.split()[0]}, "
        f"load average before the run {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}"
    )


def jitter(rng: random.Random, mean: float) -> float:
    """Exponential inter-arrival time (Poisson arrivals)."""
    return rng.expovariate(1.0 / mean) if mean > 0 else 0.0
