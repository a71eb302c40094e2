"""Open hours: parsing a schedule's weekly ranges and closures, and judging an instant against it.

Shared by the lint rules (which report what does not parse), codegen (which writes the parsed
form into the route table) and the runtime (which answers "open or closed?" per request from
precomputed lists, with no store round trip). Nothing here reads the clock: every function
is given its instant, so compiling is deterministic.
"""
from __future__ import annotations

import bisect
import datetime as dt
import functools
import re
from dataclasses import dataclass
from typing import Any, Iterator

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
FULL_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
DAY_WORDS: dict[str, tuple[int, ...]] = {
    **{d: (i,) for i, d in enumerate(DAYS)}, **{d: (i,) for i, d in enumerate(FULL_DAYS)},
    "daily": tuple(range(7)), "weekdays": tuple(range(5)), "weekends": (5, 6),
}
TIME = re.compile(r"([0-9]{1,2}):([0-9]{2})")
DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
MAX_CLOSURES = 1000  # holidays for decades; a list past this is generated data, not a policy
MAX_CLOSURE_DAYS = 366  # a closure is a holiday or a season, not a way to switch a line off
CLOSED_WORD = "closed"
# Zone names are looked up in the IANA list, never opened as paths: `../../etc/passwd` is just unknown.
ZONE_NAME = re.compile(r"[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*")
DEFAULT_CLOSED_TEXT = "Sorry, we are closed right now. Please call again during our opening hours."
# Years whose DST gaps and folds lint looks at: fixed, so lint's answer never depends on today's date.
DST_YEARS = (2020, 2040)


@functools.lru_cache(maxsize=1)
def zone_names() -> frozenset[str]:
    """Every IANA zone the tzdata package ships: the same list on every machine.

    Not zoneinfo.available_timezones(): that adds the OS's zone files, among them `localtime`, a link to
    the machine's own zone, which would give a policy a different clock on every server.
    """
    import importlib.resources

    return frozenset(importlib.resources.files("tzdata").joinpath("zones").read_text(encoding="utf-8").split())


def known_zone(name: object) -> bool:
    """Whether `name` is an IANA zone; checked against the list, so a path-like name is never opened."""
    return isinstance(name, str) and len(name) <= 64 and bool(ZONE_NAME.fullmatch(name)) and name in zone_names()


@functools.lru_cache(maxsize=256)
def zone(name: str) -> Any:
    """The ZoneInfo for a known zone name (ValueError for any other), read from the tzdata package.

    zoneinfo.ZoneInfo(name) would prefer the OS's copy in /usr/share/zoneinfo, older or newer than tzdata's,
    so a zone whose rules changed would open and close at different times on different machines.
    """
    import importlib.resources
    import zoneinfo

    if not known_zone(name):
        raise ValueError(f"unknown time zone {name!r}")
    with importlib.resources.files("tzdata.zoneinfo").joinpath(*name.split("/")).open("rb") as data:
        return zoneinfo.ZoneInfo.from_file(data, key=name)


def parse_days(key: object) -> tuple[tuple[int, ...], str | None]:
    """`mon`, `monday`, `mon-fri`, `sat,sun`, `daily`, `weekdays`, `weekends` as weekday numbers (0 = Monday)."""
    text = str(key).strip().lower()
    days: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        first, sep, last = part.partition("-")
        if sep:
            start, end = DAY_WORDS.get(first.strip()), DAY_WORDS.get(last.strip())
            bad = [w.strip() for w, d in ((first, start), (last, end)) if d is None]
            if bad:
                return (), _day_problem(bad[0])
            if start is None or end is None or len(start) != 1 or len(end) != 1:
                return (), (f"'{part[:40]}' is not a range of days: write one day on each side of '-', "
                            "e.g. mon-fri or fri-mon")
            span = range(start[0], end[0] + 1) if start[0] <= end[0] else [*range(start[0], 7), *range(0, end[0] + 1)]
            days.extend(span)
        elif part in DAY_WORDS:
            days.extend(DAY_WORDS[part])
        else:
            return (), _day_problem(part)
    return tuple(sorted(set(days))), None


def _day_problem(word: str) -> str:
    import difflib

    word = word[:40]
    close = difflib.get_close_matches(word, list(DAY_WORDS), n=1, cutoff=0.6)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return f"'{word[:40]}' is not a day{hint} (days: mon..sun, monday..sunday, daily, weekdays, weekends, mon-fri)"


def parse_time(text: str, *, end: bool) -> tuple[int | None, str | None]:
    """`HH:MM` as minutes after midnight; `24:00` only as the end of a range."""
    found = TIME.fullmatch(text.strip())
    if not found:
        return None, f"'{text.strip()[:40]}' is not a time (write HH:MM, e.g. 08:30)"
    hour, minute = int(found.group(1)), int(found.group(2))
    if hour == 24 and minute == 0:
        if end:
            return 24 * 60, None
        return None, "24:00 is only an end (the end of the day); a range starting at midnight starts at 00:00"
    if hour > 23 or minute > 59:
        return None, f"'{text.strip()}' is not a time of day (00:00 to 23:59, or 24:00 as an end)"
    return hour * 60 + minute, None


def parse_range(text: object) -> tuple[tuple[int, int] | None, str | None]:
    """`08:00-17:00` as (start, end) minutes; an empty or backwards range is refused, naming the fix."""
    if not isinstance(text, str):
        return None, f"{text!r} is not a range (write \"08:00-17:00\")"
    start_text, sep, end_text = text.partition("-")
    if not sep:
        return None, f"'{text.strip()[:40]}' is not a range (write \"08:00-17:00\")"
    start, problem = parse_time(start_text, end=False)
    if problem:
        return None, problem
    end, problem = parse_time(end_text, end=True)
    if problem or start is None or end is None:
        return None, problem
    if end == start:
        return None, f"'{text.strip()}' is empty: it ends when it starts"
    if end < start:
        return None, (f"'{text.strip()}' ends before it starts; a range past midnight is two ranges: "
                      f"'{start_text.strip()}-24:00' on one day and '00:00-{end_text.strip()}' on the next")
    return (start, end), None


def ranges_of(value: object) -> list[object]:
    """A weekly entry's ranges: one string, a list of strings, or `closed` (none)."""
    items = value if isinstance(value, list) else [value]
    return [item for item in items if not (isinstance(item, str) and item.strip().lower() == CLOSED_WORD)]


@dataclass(frozen=True)
class WeeklyRange:
    """One parsed range of one weekly entry, with where it was written."""

    day: int
    start: int
    end: int
    key: str  # the weekly key it came from, e.g. "mon-fri"
    index: int | None  # its position in that key's list, None for a single string
    text: str


def weekly_ranges(weekly: object) -> Iterator[WeeklyRange]:
    """Every range that parses, once per day it applies to; what does not parse is the rules' to report."""
    if not isinstance(weekly, dict):
        return
    for key, value in weekly.items():
        days, problem = parse_days(key)
        if problem:
            continue
        listed = isinstance(value, list)
        for index, item in enumerate(value if listed else [value]):
            if isinstance(item, str) and item.strip().lower() == CLOSED_WORD:
                continue
            parsed, problem = parse_range(item)
            if parsed is None:
                continue
            for day in days:
                yield WeeklyRange(day, parsed[0], parsed[1], str(key), index if listed else None, str(item))


def parse_date(text: object) -> tuple[dt.date | None, str | None]:
    """`YYYY-MM-DD` as a date; anything else (a datetime, `2026-02-30`, `christmas`) is refused."""
    if not isinstance(text, str) or not DATE.fullmatch(text.strip()):
        return None, f"{str(text)[:40]!r} is not a date (write YYYY-MM-DD, e.g. 2026-12-25)"
    try:
        return dt.date.fromisoformat(text.strip()), None
    except ValueError:
        return None, f"'{text.strip()}' is not a date in the calendar"


def parse_closure(entry: object) -> tuple[tuple[dt.date, dt.date, str] | None, str | None]:
    """A closure (`2026-12-25`, `{date, name}` or `{from, to, name}`) as (first day, last day, name)."""
    if isinstance(entry, dict):
        name = str(entry.get("name") or "")
        if "date" in entry:
            day, problem = parse_date(entry["date"])
            return ((day, day, name), None) if day else (None, problem)
        first, problem = parse_date(entry.get("from"))
        if first is None:
            return None, problem
        last, problem = parse_date(entry.get("to"))
        if last is None:
            return None, problem
        if last < first:
            return None, f"closure ends ({last}) before it starts ({first})"
        if (last - first).days + 1 > MAX_CLOSURE_DAYS:
            return None, (f"closure of {(last - first).days + 1:,} days (at most {MAX_CLOSURE_DAYS}): closures are "
                          "holidays; to switch a line off, remove its route")
        return (first, last, name), None
    day, problem = parse_date(entry)
    return ((day, day, ""), None) if day else (None, problem)


def closures_of(raw: object) -> list[tuple[dt.date, dt.date, str]]:
    """Every closure that parses, at most MAX_CLOSURES of them."""
    out = []
    for entry in (raw if isinstance(raw, list) else [])[:MAX_CLOSURES]:
        parsed, _ = parse_closure(entry)
        if parsed:
            out.append(parsed)
    return out


def compiled(schedule_zone: str, weekly: object, closures: object) -> dict:
    """A schedule's route-table form: zone, each day's ranges as `HH:MM-HH:MM` (None = every day, all day),
    and closures as [first day, last day, name]; sorted, so the same schedule always compiles to the same bytes."""
    days: dict[str, list[str]] | None = None
    if weekly is not None:
        spans = sorted({(r.day, r.start, r.end) for r in weekly_ranges(weekly)})
        days = {name: [f"{minutes_text(a)}-{minutes_text(b)}" for d, a, b in spans if d == i]
                for i, name in enumerate(DAYS)}
    listed = sorted({(a.isoformat(), b.isoformat(), name) for a, b, name in closures_of(closures)})
    return {"zone": schedule_zone, "weekly": days, "closures": [list(c) for c in listed]}


def minutes_text(minutes: int) -> str:
    """Minutes after midnight as HH:MM."""
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


class Schedule:
    """A compiled schedule, precomputed for cheap per-request checks (no store, one zone conversion)."""

    def __init__(self, schedule_id: str, spec: dict):
        self.id = schedule_id
        self.zone_name = spec["zone"]
        self.zone = zone(spec["zone"])
        weekly = spec.get("weekly")
        self.always = weekly is None
        self.days: list[list[tuple[int, int]]] = [[] for _ in DAYS]
        for day, ranges in (weekly or {}).items():
            for text in ranges:
                parsed, problem = parse_range(text)
                if parsed is None:
                    raise ValueError(f"hours '{schedule_id}' {day}: {problem}")
                self.days[DAYS.index(day)].append(parsed)
        # Closures merged into disjoint ordinal intervals, so one bisect answers "is this date closed?".
        merged: list[list[Any]] = []
        dated = sorted((dt.date.fromisoformat(a).toordinal(), dt.date.fromisoformat(b).toordinal(), str(n))
                       for a, b, n in spec.get("closures") or ())
        self.dated = dated  # as written, for explain: a merged interval keeps only its first closure's name
        for first, last, name in dated:
            if merged and first <= merged[-1][1] + 1:
                merged[-1][1] = max(merged[-1][1], last)
                continue
            merged.append([first, last, name])
        self.closure_starts = [m[0] for m in merged]
        self.closures = merged
        self._last: tuple[float, bool] = (float("nan"), False)  # (minute asked about, answer); nan equals nothing

    def local(self, instant: float) -> dt.datetime:
        """The instant on this schedule's wall clock."""
        return dt.datetime.fromtimestamp(instant, self.zone)

    def _closure(self, local: dt.datetime) -> list[Any] | None:
        day = local.toordinal()
        where = bisect.bisect_right(self.closure_starts, day) - 1
        return self.closures[where] if where >= 0 and self.closures[where][1] >= day else None

    def is_open(self, instant: float) -> bool:
        """Whether the line is open at a Unix time: no closure that day, and a weekly range holds the wall clock.

        Ranges, closures and zone offsets (every zone's since 1972) change on whole minutes, so the answer
        for the last minute asked about is kept: requests within one minute cost a division and a comparison.
        """
        bucket = instant // 60
        last = self._last
        if last[0] == bucket:
            return last[1]
        local = dt.datetime.fromtimestamp(instant, self.zone)
        if self.closures and self._closure(local) is not None:
            answer = False
        elif self.always:
            answer = True
        else:
            minute = local.hour * 60 + local.minute
            answer = any(start <= minute < end for start, end in self.days[local.weekday()])
        self._last = (bucket, answer)  # one tuple, replaced whole: safe to share between threads
        return answer

    def explain(self, instant: float) -> tuple[bool, str]:
        """(open, why) at a Unix time, for `roomc explain`."""
        local = self.local(instant)
        stamp = f"{DAYS[local.weekday()]} {local:%Y-%m-%d %H:%M} {self.zone_name}"
        other = local.replace(fold=1 - local.fold)
        if other.utcoffset() != local.utcoffset() and other.astimezone(dt.timezone.utc).replace(tzinfo=None) \
                .astimezone(self.zone).replace(tzinfo=None) == local.replace(tzinfo=None):
            # A fold: this wall-clock minute happens twice, so say which pass the instant is.
            offset = local.strftime("%z")
            stamp += (f" (the {'second' if local.fold else 'first'} {local:%H:%M}, "
                      f"UTC{offset[:3]}:{offset[3:]})")
        closure = self._closure(local)
        if closure is not None:
            day = local.toordinal()
            name = ", ".join(dict.fromkeys(n for first, last, n in self.dated if first <= day <= last and n))
            return False, f"hours '{self.id}': closed at {stamp}: a closure{f' ({name})' if name else ''}"
        if self.always:
            return True, f"hours '{self.id}': open at {stamp} (no weekly hours: open every day but closures)"
        minute = local.hour * 60 + local.minute
        for start, end in self.days[local.weekday()]:
            if start <= minute < end:
                return True, f"hours '{self.id}': open at {stamp}, within {minutes_text(start)}-{minutes_text(end)}"
        today = ", ".join(f"{minutes_text(a)}-{minutes_text(b)}" for a, b in self.days[local.weekday()]) or "closed"
        return False, f"hours '{self.id}': closed at {stamp}: outside the weekly hours ({DAYS[local.weekday()]}: {today})"


def now_view(local: dt.datetime) -> dict[str, Any]:
    """What templates see as `now`: the wall clock in the policy's zone."""
    return {"iso": local.isoformat(timespec="seconds"), "date": local.date().isoformat(),
            "time": f"{local:%H:%M}", "weekday": DAYS[local.weekday()], "hour": local.hour, "minute": local.minute,
            "year": local.year, "month": local.month, "day": local.day, "zone": str(local.tzinfo),
            "timestamp": int(local.timestamp())}



@functools.lru_cache(maxsize=256)
def dst_troubles(zone_name: str) -> tuple[tuple[str, int, int, str], ...]:
    """The zone's DST gaps and folds in DST_YEARS as (kind, first minute, end minute, date) of local time.

    Found by sampling the UTC offset weekly and bisecting each change to the minute; a zone with
    no change in those years (most of Africa) costs one pass and returns nothing.
    """
    tz = zone(zone_name)
    utc = dt.timezone.utc
    start = dt.datetime(DST_YEARS[0], 1, 1, tzinfo=utc)
    stop = dt.datetime(DST_YEARS[1] + 1, 1, 1, tzinfo=utc)
    step = dt.timedelta(days=7)
    found: list[tuple[str, int, int, str]] = []
    at, before = start, start.astimezone(tz).utcoffset()
    while at < stop:
        nxt = min(at + step, stop)
        after = nxt.astimezone(tz).utcoffset()
        if after != before and before is not None and after is not None:
            low, high = at, nxt
            while high - low > dt.timedelta(minutes=1):
                mid = low + (high - low) / 2
                if mid.astimezone(tz).utcoffset() == before:
                    low = mid
                else:
                    high = mid
            local_start = (high + before).replace(tzinfo=None)  # the wall-clock time the change happens at
            shift = int((after - before).total_seconds() // 60)
            first = local_start.hour * 60 + local_start.minute
            if shift > 0:  # clocks jump forward: [first, first + shift) never shows
                found.append(("gap", first, first + shift, local_start.date().isoformat()))
            else:  # clocks go back: [first + shift, first) shows twice
                found.append(("fold", first + shift, first, local_start.date().isoformat()))
        at, before = nxt, after
    return tuple(found)
